//! One integration test binary (matklad): the CLI contract, end-to-end runs on real databases,
//! and snapshots of what a person sees.

mod bench;
mod cache;
mod check;
mod cli;
mod confine;
mod connect;
mod conventions;
mod damage;
mod e2e;
mod explore;
mod galera_runs;
mod galera_server;
mod galera_url;
mod html;
mod json_schema;
mod kept_run;
mod mariadb;
mod mariadb_heal;
mod mariadb_server;
mod outcome_forms;
mod per_engine;
mod pictures;
mod redis;
mod replica;
mod roles;
mod runner;
mod session_level;
mod sessions;
mod step;
mod support;
mod svg_text;
mod tls;
mod user_server;
mod verdicts;
mod width;
