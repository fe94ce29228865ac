//! One file per subcommand.

pub mod bench;
pub mod chart;
pub mod checkpoint;
pub mod replay;
pub mod simulate;
