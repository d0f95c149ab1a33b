//! Reports to text. Pure: renderers return strings; only the CLI writes them.

pub mod bench;
mod bench_svg;
pub mod check;
mod event;
pub mod explain;
pub mod explore;
mod html;
mod json;
pub mod list;
mod markdown;
pub mod matrix;
mod mermaid;
mod step;
mod svg;
mod table;

pub use html::html;
pub use json::{json, json_all, SCHEMA_VERSION};
pub use markdown::markdown;
pub use mermaid::{mermaid, mermaid_markdown};
pub use step::{intro_screen, step_screen};
pub use svg::svg;
pub use table::{summary, table};

/// How the terminal output should look; the CLI decides.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
    /// Width of the timeline table in columns.
    pub width: u16,
}

impl Default for Style {
    fn default() -> Style {
        Style {
            color: false,
            width: 100,
        }
    }
}
