//! The local simulator: an Amazon States Language interpreter that runs the same
//! `statemachines/*.asl.json` files as AWS, dispatching Task states to in-process handlers.
//!
//! Supported: Pass, Task, Choice, Wait, Succeed, Fail, Parallel, Map (inline, and
//! distributed with inline items); InputPath, Parameters, ItemSelector, ResultSelector,
//! ResultPath, OutputPath; `.$` paths on the input and on the context object; the common
//! intrinsic functions; Retry with backoff and Catch; a virtual clock so Waits do not sleep.
//! Anything else is refused when the definition loads, naming the state and the feature.

pub mod asl;
pub mod exec;
pub mod path;
pub mod template;

pub use asl::{LoadError, Machine};
pub use exec::{Execution, HistoryEvent, Observer, Simulator, Status, TaskError, TaskInvoker};

#[cfg(test)]
mod tests;
