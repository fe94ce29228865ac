//! The `bots` application's library: the files it reads and writes ([`io`]: task pools, replay logs,
//! posteriors), the simulator ([`sim`]) and its charts ([`chart`]). Built on the `bots` library, which a
//! trainer depends on without any of this; shared by the `bots` binary and the GRPO example.

pub mod chart;
mod err;
pub mod io;
pub mod sim;
