//! A server of the test's own standing in for a user's: a cached throwaway cluster, reached
//! by the tool only through `--url`, and by the test through a client of its own.

use std::time::{Duration, Instant};

use anomalies::engine::cluster::{find_bindir, Cluster};
use tokio_postgres::config::Host;
use tokio_postgres::NoTls;

/// A server of the test's own, standing in for a user's: reached only through --url.
pub(crate) struct UserServer {
    cluster: Option<Cluster>,
    pub(crate) url: String,
    /// A pair's standby, as `--url standby=…` names it.
    pub(crate) standby_url: Option<String>,
    /// `socket:port`, as the tool describes the server (`socket:port/database`).
    pub(crate) at: String,
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl UserServer {
    pub(crate) fn start() -> UserServer {
        UserServer::start_with(false)
    }

    /// A primary and its streaming hot standby.
    pub(crate) fn start_pair() -> UserServer {
        UserServer::start_with(true)
    }

    fn start_with(pair: bool) -> UserServer {
        let bindir = find_bindir().expect("PostgreSQL server binaries are not installed");
        let cluster = match pair {
            true => Cluster::start_pair(&bindir),
            false => Cluster::start(&bindir),
        }
        .expect("a server starts");
        let config = cluster.config();
        let Some(Host::Unix(socket)) = config.get_hosts().first() else {
            panic!("the cluster listens on a unix socket");
        };
        let url = conninfo(&config);
        let standby_url = cluster
            .standby_config()
            .map(|c| format!("standby={}", conninfo(&c)));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = runtime.block_on(async {
            let (client, connection) = config.connect(NoTls).await.unwrap();
            tokio::spawn(connection);
            client
        });
        let at = format!("{}:{}", socket.display(), config.get_ports()[0]);
        UserServer {
            cluster: Some(cluster),
            url,
            standby_url,
            at,
            runtime,
            client,
        }
    }

    pub(crate) fn execute(&self, sql: &str) {
        self.runtime
            .block_on(self.client.execute(sql, &[]))
            .unwrap();
    }

    pub(crate) fn query(&self, sql: &str) -> Vec<String> {
        self.runtime
            .block_on(self.client.query(sql, &[]))
            .unwrap()
            .iter()
            .map(|row| row.get::<_, String>(0))
            .collect()
    }

    /// Runs `sql` in `database`, on a connection of its own, and returns the first column.
    pub(crate) fn query_in(&self, database: &str, sql: &str) -> Vec<String> {
        let mut config = self.cluster.as_ref().expect("the server runs").config();
        config.dbname(database);
        self.first_column(&config, sql)
    }

    /// Runs `sql` on the pair's standby, on a connection of its own; its first column.
    pub(crate) fn on_standby(&self, sql: &str) -> Vec<String> {
        let config = self
            .cluster
            .as_ref()
            .and_then(Cluster::standby_config)
            .expect("a pair");
        self.first_column(&config, sql)
    }

    fn first_column(&self, config: &tokio_postgres::Config, sql: &str) -> Vec<String> {
        self.runtime.block_on(async {
            let (client, connection) = config.connect(NoTls).await.unwrap();
            let connection = tokio::spawn(connection);
            let rows = client.simple_query(sql).await.unwrap();
            drop(client);
            let _ = connection.await;
            rows.iter()
                .filter_map(|message| match message {
                    tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
                    _ => None,
                })
                .collect()
        })
    }

    /// Asks the server until `sql` returns no rows; the backends of a closed client take a
    /// moment to exit.
    pub(crate) fn until_empty(&self, sql: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let rows = self.query(sql);
            if rows.is_empty() || Instant::now() > deadline {
                return rows;
            }
        }
    }
}

/// `host=SOCKET_DIR port=PORT user=anomalies dbname=postgres`.
fn conninfo(config: &tokio_postgres::Config) -> String {
    let Some(Host::Unix(socket)) = config.get_hosts().first() else {
        panic!("the cluster listens on a unix socket");
    };
    format!(
        "host={} port={} user=anomalies dbname=postgres",
        socket.display(),
        config.get_ports()[0]
    )
}

impl Drop for UserServer {
    fn drop(&mut self) {
        if let Some(cluster) = self.cluster.take() {
            let _ = cluster.stop();
        }
    }
}
