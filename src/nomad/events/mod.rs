//! The wire side of `GET /v1/event/stream` (Nomad 1.0+), pure: it is fed
//! bytes and hands back typed frames, and it builds the request's query. No
//! HTTP client code lives here. The facts it relies on are in
//! `docs/nomad-events.md` (§N below points there).
//!
//! - [`LineDecoder`]: NDJSON framing fed arbitrary chunks (§2), memory
//!   bounded by one line, each line capped (`TooLarge`); `finish()` turns
//!   the stream's ending into a typed [`StreamError`] (§3).
//! - [`Event`] / [`Payload`]: the Job, Allocation and Node payloads the
//!   cluster state needs (§4); other topics are skipped.
//! - [`job_deletion`]: whether a Job event deletes the job, per version (§5).
//! - [`plan_subscriptions`]: the query parameters, per version (§1, §6).
//! - [`StreamCursor`]: drops the re-delivered tail after a resume (§7).
//! - [`JobListEntry`]: a `/v1/jobs` element with the ID and ModifyIndex the
//!   incremental state needs (the counters' `JobStub` has neither).

mod decode;
mod payload;
mod subscribe;

pub use decode::{Frame, LineDecoder, StreamError, DEFAULT_MAX_LINE};
pub use payload::{job_deletion, AllocEvent, Event, JobDeletion, JobEvent, JobListEntry, Payload};
pub use subscribe::{
    plan_subscriptions, resume_index, NamespaceScope, StreamCursor, SubscribeOptions, Subscription,
    SubscriptionPlan,
};

#[cfg(test)]
mod tests;
