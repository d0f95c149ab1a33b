//! The arguments as the library's requests: which engine, how to connect, which levels, the
//! scenario with its fix.

use anomalies::app::AppError;
use anomalies::engine::{Choice, ConnectOptions};
use anomalies::level::Level;
use anomalies::runner::RunOptions;
use anomalies::scenario::{Scenario, Topology};

use crate::cli::{ConnectionArgs, EngineArg, LevelArg};

pub(crate) fn engine_choice(engine: EngineArg) -> Choice {
    match engine {
        EngineArg::Auto => Choice::Auto,
        EngineArg::Only(kind) => Choice::Only(kind),
        EngineArg::Galera => Choice::Galera,
    }
}

pub(crate) fn connect_options(
    connection: &ConnectionArgs,
    choice: Choice,
) -> anyhow::Result<ConnectOptions> {
    let urls = NodeUrls::parse(&connection.url)?;
    // Numbered nodes are a Galera cluster's: `--engine` may be left out.
    let choice = match choice {
        Choice::Auto if !urls.others.is_empty() => Choice::Galera,
        choice => choice,
    };
    Ok(ConnectOptions {
        choice,
        url: urls.first,
        standby_url: urls.standby,
        node_urls: urls.others,
        connect_timeout: connection.connect_timeout,
        pg_bindir: connection.pg_bindir.clone(),
        mariadb_bindir: connection.mariadb_bindir.clone(),
        redis_url: connection.redis_url.clone(),
        topology: Default::default(),
    })
}

/// The URLs of `--url [NODE=]URL`, given once per node.
#[derive(Debug, Default, PartialEq)]
struct NodeUrls {
    /// The primary, or node 1 of a cluster: `--url URL`, `primary=URL` or `1=URL`.
    first: Option<String>,
    standby: Option<String>,
    /// Nodes 2 and up of a Galera cluster, in order.
    others: Vec<String>,
}

impl NodeUrls {
    /// Only a node's name before `=` makes a prefix: `host=db port=5432` is a connection
    /// string.
    fn parse(urls: &[String]) -> anyhow::Result<NodeUrls> {
        let most = usize::from(Topology::MAX_NODES);
        let mut first = None;
        let mut standby = None;
        let mut numbered: Vec<Option<String>> = vec![None; most + 1];
        for url in urls {
            let (slot, url, name) = match url.split_once('=') {
                Some(("standby", url)) => (&mut standby, url, "the standby".to_string()),
                Some(("primary", url)) => (&mut first, url, "the primary".to_string()),
                Some((number, url)) if is_number(number) => {
                    let node: usize = number.parse().unwrap_or(0);
                    if !(1..=most).contains(&node) {
                        anyhow::bail!(
                            "--url {number}=URL: a cluster's nodes are numbered 1 to {most}"
                        );
                    }
                    let slot = if node == 1 {
                        &mut first
                    } else {
                        &mut numbered[node]
                    };
                    (slot, url, format!("node {node}"))
                }
                _ => (&mut first, url.as_str(), "the primary".to_string()),
            };
            if slot.replace(url.to_string()).is_some() {
                anyhow::bail!("--url names {name} twice; give each node once");
            }
        }
        let highest = numbered.iter().rposition(Option::is_some).unwrap_or(0);
        if let Some(gap) = (2..highest).find(|&node| numbered[node].is_none()) {
            anyhow::bail!(
                "--url {highest}=URL needs --url {gap}=URL too: give every node from 1 up"
            );
        }
        let others: Vec<String> = numbered.into_iter().flatten().collect();
        if first.is_none() {
            if standby.is_some() {
                anyhow::bail!(
                    "--url standby=URL needs the primary's URL too: --url URL or --url primary=URL"
                );
            }
            if !others.is_empty() {
                anyhow::bail!("--url {highest}=URL needs node 1 of the cluster too: --url 1=URL");
            }
        }
        if standby.is_some() && !others.is_empty() {
            anyhow::bail!(
                "--url standby=URL names a PostgreSQL hot standby and --url {highest}=URL a node \
                 of a Galera cluster: give one or the other"
            );
        }
        Ok(NodeUrls {
            first,
            standby,
            others,
        })
    }
}

fn is_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

pub(crate) fn run_options(connection: &ConnectionArgs) -> RunOptions {
    RunOptions {
        step_timeout: connection.step_timeout,
        stop_when_impossible: false,
    }
}

/// The scenario with `--fix` in place, when one is asked for.
pub(crate) fn with_fix(scenario: Scenario, fix: Option<&str>) -> anyhow::Result<Scenario> {
    match fix {
        None => Ok(scenario),
        Some(fix) => scenario
            .with_fix(fix)
            .map_err(|message| AppError::Usage(message).into()),
    }
}

pub(crate) fn levels(level: LevelArg) -> Vec<Level> {
    match level {
        LevelArg::ReadUncommitted => vec![Level::ReadUncommitted],
        LevelArg::ReadCommitted => vec![Level::ReadCommitted],
        LevelArg::RepeatableRead => vec![Level::RepeatableRead],
        LevelArg::Serializable => vec![Level::Serializable],
        LevelArg::All => Level::ALL.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(urls: &[&str]) -> Result<NodeUrls, String> {
        let urls: Vec<String> = urls.iter().map(|u| u.to_string()).collect();
        NodeUrls::parse(&urls).map_err(|e| e.to_string())
    }

    #[test]
    fn numbered_urls_are_a_clusters_nodes_in_order() {
        let urls = parse(&["3=mysql://c", "1=mysql://a", "2=mysql://b"]).unwrap();
        assert_eq!(urls.first.as_deref(), Some("mysql://a"));
        assert_eq!(urls.others, ["mysql://b", "mysql://c"]);
        let unnumbered = parse(&["mysql://a", "2=mysql://b"]).unwrap();
        assert_eq!(unnumbered.first.as_deref(), Some("mysql://a"));
    }

    #[test]
    fn a_connection_string_is_no_node_name() {
        let urls = parse(&["host=db port=5432"]).unwrap();
        assert_eq!(urls.first.as_deref(), Some("host=db port=5432"));
        assert!(urls.others.is_empty() && urls.standby.is_none());
    }

    #[test]
    fn a_cluster_missing_a_node_is_refused_with_the_one_missing() {
        let error = |urls: &[&str]| parse(urls).unwrap_err();
        assert_eq!(
            error(&["1=mysql://a", "3=mysql://c"]),
            "--url 3=URL needs --url 2=URL too: give every node from 1 up"
        );
        assert_eq!(
            error(&["2=mysql://b"]),
            "--url 2=URL needs node 1 of the cluster too: --url 1=URL"
        );
        assert_eq!(
            error(&["mysql://a", "1=mysql://b"]),
            "--url names node 1 twice; give each node once"
        );
        assert_eq!(
            error(&["1=mysql://a", "4=mysql://d"]),
            "--url 4=URL: a cluster's nodes are numbered 1 to 3"
        );
        assert!(
            error(&["postgres://a", "standby=postgres://b", "2=mysql://c"])
                .contains("give one or the other")
        );
    }
}
