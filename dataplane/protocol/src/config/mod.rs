//! Configuration: the TOML file shape and the validated runtime types.

mod model;

pub use model::*;
