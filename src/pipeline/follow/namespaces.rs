//! Nomad 1.9.6 / 1.10.0+ expand `namespace=*` on the event stream at
//! subscribe time: a parked blocking query on `/v1/namespaces` tells the
//! follower when a subscription no longer covers every namespace.

use std::collections::BTreeSet;

use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::FollowSetup;
use crate::nomad::features::{StreamFeatures, StreamNamespaces};
use crate::nomad::model::Namespace;
use crate::nomad::queries::{ListPlan, QueryOptions};
use crate::nomad::watch::{Fold, State, WatchTiming};

/// On versions whose `namespace=*` covers only the namespaces that existed
/// at subscribe time: `/v1/namespaces` kept by a blocking query, to notice
/// a new one (a token that may not list namespaces leaves it to the
/// reconcile).
pub(super) struct NamespaceWatch {
    rx: Option<watch::Receiver<State<Vec<String>>>>,
    known: Option<BTreeSet<String>>,
    _stop: Option<DropGuard>,
}

impl NamespaceWatch {
    pub(super) fn start(
        setup: &FollowSetup,
        features: &StreamFeatures,
        stop: &CancellationToken,
    ) -> Self {
        let needed =
            setup.namespace.is_none() && features.namespaces == StreamNamespaces::AtSubscribe;
        if !needed {
            return Self {
                rx: None,
                known: None,
                _stop: None,
            };
        }
        let stop = stop.child_token();
        let source = Fold::new(
            ListPlan::namespaces(&QueryOptions::default()),
            Vec::new,
            |names: &mut Vec<String>, ns: Namespace| names.push(ns.name),
        );
        let timing = WatchTiming {
            interval: setup.interval,
            wait: crate::nomad::watch::MAX_WAIT,
            resync: setup.reconcile,
        };
        let rx = crate::nomad::watch::spawn(source, setup.api.clone(), timing, stop.clone()).0;
        Self {
            rx: Some(rx),
            known: None,
            _stop: Some(stop.drop_guard()),
        }
    }

    /// Resolves when the list changed: true when a namespace was added
    /// since the first answer (the subscription's baseline).
    pub(super) async fn grown(&mut self) -> bool {
        let Some(rx) = self.rx.as_mut() else {
            return std::future::pending().await;
        };
        if rx.changed().await.is_err() {
            self.rx = None;
            return false;
        }
        let names: BTreeSet<String> = match &*rx.borrow() {
            State::Ready(names) => names.iter().cloned().collect(),
            _ => return false,
        };
        match &self.known {
            Some(known) if !names.is_subset(known) => true,
            _ => {
                self.known = Some(names);
                false
            }
        }
    }
}
