//! The full read that starts every subscription: the three lists, one
//! element at a time, into a fresh `ClusterState`.

use std::sync::Arc;

use super::{FollowSetup, ViewErrors};
use crate::gauges::cluster::{ClusterState, Table};
use crate::nomad::events::{AllocEvent, JobListEntry};
use crate::nomad::model::Node;
use crate::nomad::queries::ListPlan;
use crate::nomad::{ListOutcome, NomadApi, NomadError};

/// Reads the three lists into a fresh state, one element at a time (the
/// lists are never held).
pub(super) async fn full_read(
    setup: &FollowSetup,
) -> Result<(ClusterState, ViewErrors), NomadError> {
    let state = std::sync::Mutex::new(ClusterState::new(setup.features.lifecycle));
    let api = &setup.api;
    let add = |f: &mut dyn FnMut(&mut ClusterState)| {
        if let Ok(mut state) = state.lock() {
            f(&mut state);
        }
    };
    let jobs = async {
        let index = read_list(api, &setup.lists.jobs, |at, job: JobListEntry| {
            add(&mut |s| s.add_job(at, &job));
        })
        .await?;
        add(&mut |s| s.listed(Table::Jobs, index));
        Ok::<_, NomadError>(())
    };
    let nodes = async {
        if !setup.cluster_view {
            return Ok(());
        }
        let index = read_list(api, &setup.lists.nodes, |at, node: Node| {
            add(&mut |s| s.add_node(at, &node));
        })
        .await?;
        add(&mut |s| s.listed(Table::Nodes, index));
        Ok(())
    };
    let allocs = async {
        let Some(plan) = setup
            .lists
            .allocations
            .as_ref()
            .filter(|_| setup.cluster_view)
        else {
            return Ok(());
        };
        let index = read_list(api, plan, |at, alloc: AllocEvent| {
            add(&mut |s| s.add_alloc(at, &alloc));
        })
        .await?;
        add(&mut |s| s.listed(Table::Allocs, index));
        Ok(())
    };
    let (jobs, nodes, allocs) = tokio::join!(jobs, nodes, allocs);
    jobs?;
    let errors = (nodes.err().map(Arc::new), allocs.err().map(Arc::new));
    let state = state.into_inner().map_err(|_| NomadError::Missing {
        path: String::new(),
        what: "the full read was interrupted",
    })?;
    Ok((state, errors))
}

/// Reads one list, handing each element with its page's index; returns
/// the list's index.
async fn read_list<T: crate::nomad::skim::ListElement>(
    api: &NomadApi,
    plan: &ListPlan,
    mut add: impl FnMut(u64, T),
) -> Result<u64, NomadError> {
    let outcome = api.list_indexed(&plan.query(None), &mut add).await?;
    Ok(match outcome {
        ListOutcome::Read { index, .. } => index.unwrap_or(0),
        ListOutcome::Unchanged { index } => index,
    })
}
