//! The local simulator: an Amazon States Language interpreter that runs the same
//! `statemachines/*.asl.json` files as AWS, dispatching Task states to in-process handlers.
//!
//! Supported: Pass, Task, Choice, Wait, Succeed, Fail, Parallel, Map (inline, and
//! distributed: items inline or from S3 through an [`ObjectStore`] with ItemReader,
//! ItemBatcher, ResultWriter, tolerated failures, child executions with their own
//! history); InputPath, Parameters, ItemSelector, ResultSelector, ResultPath, OutputPath;
//! JSONPath with wildcards, slices, unions, filters and `..` where ASL allows them (reference
//! paths stay simple); `.$` paths on the input and on the context object; the `...Path`
//! forms of MaxConcurrency, TimeoutSeconds, HeartbeatSeconds and the tolerated failures; the
//! common intrinsic functions; Retry with backoff and Catch; a virtual clock so Waits do
//! not sleep. Anything else is refused when the definition loads, naming the state and the
//! feature.

pub mod asl;
pub mod exec;
pub mod jsonata;
mod map;
mod nested;
pub mod objects;
pub mod path;
pub mod template;

pub use asl::{LoadError, Machine};
pub use exec::{Execution, HistoryEvent, Observer, Simulator, Status, TaskError, TaskInvoker};
pub use objects::{MemoryObjects, ObjectInfo, ObjectStore};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_features;
