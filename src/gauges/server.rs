//! `--server` role: cluster-wide job counts. Nomad has three job statuses
//! (`pending`, `running`, `dead`); `complete` is derived from the stop flag
//! and the job summary, so the four gauges are disjoint and add up to the
//! number of jobs Nomad listed.

use super::Gauge;
use crate::gauges as names;
use crate::nomad::model::JobStub;

/// Which of the four job gauges a job counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Pending,
    Running,
    /// Dead, not stopped by a user, and every task group finished with
    /// `Complete > 0` and no `Failed`, `Lost` or `Unknown` allocation.
    Complete,
    /// Every other dead job (failed, lost, stopped, never ran).
    Dead,
}

/// Classifies one job stub; `None` for a status no Nomad version sends.
#[must_use]
pub fn classify(job: &JobStub) -> Option<JobState> {
    match job.status.as_str() {
        "pending" => Some(JobState::Pending),
        "running" => Some(JobState::Running),
        "dead" if finished_successfully(job) => Some(JobState::Complete),
        "dead" => Some(JobState::Dead),
        _ => None,
    }
}

fn finished_successfully(job: &JobStub) -> bool {
    if job.stop == Some(true) {
        return false;
    }
    let Some(groups) = job.job_summary.as_ref().and_then(|s| s.summary.as_ref()) else {
        return false;
    };
    !groups.is_empty()
        && groups
            .values()
            .all(|g| g.complete > 0 && g.failed == 0 && g.lost == 0 && g.unknown == 0)
}

/// Running tallies of one job listing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobCounts {
    pub pending: i64,
    pub running: i64,
    pub complete: i64,
    pub dead: i64,
    /// Jobs with a status no Nomad version sends (not in any gauge).
    pub unrecognised: i64,
}

impl JobCounts {
    /// Counts one job.
    pub fn add(&mut self, job: &JobStub) {
        let slot = match classify(job) {
            Some(JobState::Pending) => &mut self.pending,
            Some(JobState::Running) => &mut self.running,
            Some(JobState::Complete) => &mut self.complete,
            Some(JobState::Dead) => &mut self.dead,
            None => &mut self.unrecognised,
        };
        *slot += 1;
    }

    /// The four untagged job gauges.
    #[must_use]
    pub fn gauges(&self) -> Vec<Gauge> {
        vec![
            Gauge::count(names::SERVER_JOBS_PENDING, self.pending, vec![]),
            Gauge::count(names::SERVER_JOBS_RUNNING, self.running, vec![]),
            Gauge::count(names::SERVER_JOBS_COMPLETE, self.complete, vec![]),
            Gauge::count(names::SERVER_JOBS_DEAD, self.dead, vec![]),
        ]
    }
}
