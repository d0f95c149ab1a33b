//! MariaDB: for now, the throwaway server the tool starts from the installed binaries.

pub mod server;
