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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn count(jobs: &str) -> JobCounts {
        let stubs: Vec<JobStub> = serde_json::from_str(jobs).unwrap();
        let mut counts = JobCounts::default();
        for job in &stubs {
            counts.add(job);
        }
        assert_eq!(counts.unrecognised, 0);
        assert_eq!(
            (counts.pending + counts.running + counts.complete + counts.dead) as usize,
            stubs.len(),
            "the four gauges are disjoint and cover every job"
        );
        counts
    }

    fn expected(json: &str) -> [i64; 4] {
        let e: Value = serde_json::from_str(json).unwrap();
        ["pending", "running", "complete", "dead"].map(|k| e["jobs"][k].as_i64().unwrap())
    }

    macro_rules! version_case {
        ($name:ident, $v:literal) => {
            #[test]
            fn $name() {
                let c = count(include_str!(concat!(
                    "../../tests/fixtures/nomad-",
                    $v,
                    "/jobs.json"
                )));
                let want = expected(include_str!(concat!(
                    "../../tests/fixtures/nomad-",
                    $v,
                    "/expected.json"
                )));
                assert_eq!([c.pending, c.running, c.complete, c.dead], want);
                let values: Vec<f64> = c.gauges().iter().map(|g| g.value).collect();
                assert_eq!(values, want.map(|v| v as f64));
                assert!(
                    c.gauges().iter().all(|g| g.tags.is_empty()),
                    "job gauges are untagged"
                );
            }
        };
    }

    version_case!(nomad_0_5_6, "0.5.6");
    version_case!(nomad_0_8_7, "0.8.7");
    version_case!(nomad_1_4_0, "1.4.0");
    version_case!(nomad_1_8_0, "1.8.0");
    version_case!(nomad_1_11_0, "1.11.0");
    version_case!(nomad_2_0_5, "2.0.5");

    fn stub(json: Value) -> JobStub {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn complete_needs_every_group_to_succeed() {
        let dead = |summary: Value, stop: bool| {
            classify(&stub(serde_json::json!({
                "Status": "dead", "Stop": stop, "JobSummary": {"Summary": summary}
            })))
        };
        let ok = serde_json::json!({"g": {"Complete": 1}});
        assert_eq!(dead(ok.clone(), false), Some(JobState::Complete));
        assert_eq!(dead(ok, true), Some(JobState::Dead), "stopped by a user");
        assert_eq!(
            dead(serde_json::json!({}), false),
            Some(JobState::Dead),
            "no groups"
        );
        for bad in ["Failed", "Lost", "Unknown"] {
            let s = serde_json::json!({"g": {"Complete": 2, bad: 1}});
            assert_eq!(dead(s, false), Some(JobState::Dead), "{bad}");
        }
        let partial = serde_json::json!({"a": {"Complete": 1}, "b": {"Complete": 0}});
        assert_eq!(dead(partial, false), Some(JobState::Dead));
    }

    #[test]
    fn unknown_status_is_not_counted() {
        assert_eq!(
            classify(&stub(serde_json::json!({"Status": "weird"}))),
            None
        );
        assert_eq!(
            classify(&stub(serde_json::json!({"Status": "pending"}))),
            Some(JobState::Pending)
        );
    }
}
