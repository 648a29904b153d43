//! What an event does not carry, read per change: a job's summary (to tell
//! `complete` from `dead`), or whether it still exists (a 404 means purged).

use crate::gauges::cluster::{ClusterState, JobRef, SummaryFetch};
use crate::nomad::model::JobSummary;
use crate::nomad::{Block, NomadApi, NomadError};

use super::SUMMARY_WAIT;

/// A fetch the state asked for.
pub(super) enum Fetch {
    Summary(SummaryFetch),
    Exists(JobRef),
}

pub(super) async fn run_fetch(
    api: NomadApi,
    fetch: Fetch,
) -> (Fetch, Result<Option<JobSummary>, NomadError>) {
    let (namespace, job_id, index) = match &fetch {
        Fetch::Summary(f) => (f.namespace.clone(), f.job_id.clone(), f.after_index),
        Fetch::Exists(j) => (j.namespace.clone(), j.job_id.clone(), j.index),
    };
    let block = (index > 0).then(|| Block {
        index: index - 1,
        wait: SUMMARY_WAIT,
    });
    let result = api.job_summary(&namespace, &job_id, block).await;
    (fetch, result)
}

/// Applies a fetched summary (or the job's absence) to the state.
pub(super) fn settle(
    state: &mut ClusterState,
    fetch: Fetch,
    result: Result<Option<JobSummary>, NomadError>,
) -> Result<(), NomadError> {
    match (fetch, result) {
        (Fetch::Summary(f), Ok(Some(summary))) => {
            state.apply_summary(&f.namespace, &f.job_id, &summary);
        }
        (Fetch::Summary(f), Ok(None)) => state.remove_job(&f.namespace, &f.job_id, f.after_index),
        (Fetch::Exists(j), Ok(Some(summary))) => {
            state.apply_summary(&j.namespace, &j.job_id, &summary);
        }
        (Fetch::Exists(j), Ok(None)) => state.remove_job(&j.namespace, &j.job_id, j.index),
        (Fetch::Summary(f), Err(err)) => {
            state.requeue_summary(f);
            return Err(err);
        }
        (Fetch::Exists(j), Err(err)) => {
            // Asked again at the next reconcile at the latest.
            tracing::debug!(job = %j.job_id, "existence check failed");
            return Err(err);
        }
    }
    Ok(())
}
