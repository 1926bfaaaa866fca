//! Everything between a module's metrics and stdout: the typed metric, the line-protocol encoder,
//! the per-gather accumulator, the bounded queue and the single stdout writer.

mod accumulator;
pub mod encode;
mod filter;
mod metric;
mod queue;
mod writer;

pub use accumulator::Accumulator;
pub use encode::{Decoration, EncodeReport, MAX_LINE_BYTES, Rejected, encode_line};
pub use filter::Filter;
pub use metric::{FieldValue, Key, Metric, now_ns};
pub use queue::{Batch, Queue, RoundTicket, tune_allocator};
pub use writer::{Writer, WriterExit, wait_until_read};
