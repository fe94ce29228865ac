//! One file per subcommand.

pub mod bench;
pub mod checkpoint;
pub mod replay;
pub mod simulate;
