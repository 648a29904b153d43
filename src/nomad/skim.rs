//! (Over 450 lines on purpose: a validating JSON scanner is one job that
//! does not split well; its tests against serde_json are a quarter of it.)
//!
//! A fast path for the one list that gets huge: `GET /v1/jobs` (100k jobs,
//! ~600 bytes each). On a fast link the decode, not the transfer, sets the
//! poll time (`bench/server_scale.py`), and serde_json's typed decoding of
//! a job stub takes about 1.7 times as long as its bare skipping of the same
//! bytes. The skimmer below reads the five fields the counters need and
//! skips the rest (eight bytes per step inside strings), allocating only
//! the namespace: a third less time than serde_json typed
//! (`examples/decode_bench.rs`).
//!
//! It never decides that input is bad. Anything outside the plain form
//! Nomad writes (an escape in a string, a field of an unexpected type, a
//! duplicate key, a counter that is not a plain unsigned integer, nesting
//! deeper than 64, and every kind of malformed JSON) makes it answer
//! [`Skim::Unsure`], and the element goes through serde_json, which decodes
//! it or reports the error. A property test checks that whenever the
//! skimmer answers, serde_json gives the same value over the same bytes.

use super::model::{GroupTally, JobStatus, JobStub, JobSummary, JobType};

/// What the fast path made of the bytes at the start of an element.
#[derive(Debug, PartialEq)]
pub enum Skim<T> {
    /// The element, and how many bytes it took.
    Done(T, usize),
    /// The bytes end inside the element: wait for more.
    Incomplete,
    /// Leave this element to serde_json.
    Unsure,
}

/// A list element type, with an optional fast path.
pub trait ListElement: serde::de::DeserializeOwned {
    /// Decodes the element at the start of `bytes` without serde, where the
    /// type has a fast path; the default leaves every element to serde_json.
    fn skim(bytes: &[u8]) -> Skim<Self> {
        let _ = bytes;
        Skim::Unsure
    }
}

impl ListElement for JobStub {
    fn skim(bytes: &[u8]) -> Skim<Self> {
        let mut cur = Cursor { b: bytes, i: 0 };
        match cur.job() {
            Ok(job) => Skim::Done(job, cur.i),
            Err(Stop::Incomplete) => Skim::Incomplete,
            Err(Stop::Unsure) => Skim::Unsure,
        }
    }
}

impl ListElement for super::model::Node {}
impl ListElement for super::model::Alloc {}
impl ListElement for super::model::Namespace {}
/// Any JSON (tests, benchmarks).
impl ListElement for serde_json::Value {}
/// Checks and drops every element (benchmarks).
impl ListElement for serde::de::IgnoredAny {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Incomplete,
    Unsure,
}

type Step<T> = Result<T, Stop>;

/// Deeper nesting than this goes to serde_json (whose own limit is 128).
const MAX_DEPTH: u32 = 64;

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// High bit set in the lowest byte of `v` that is below `n` (n ≤ 128); the
/// lowest flagged byte is always exact, bytes above it may be flagged wrongly.
fn bytes_below(v: u64, n: u8) -> u64 {
    v.wrapping_sub(ONES * u64::from(n)) & !v & HIGHS
}

fn bytes_equal(v: u64, b: u8) -> u64 {
    bytes_below(v ^ (ONES * u64::from(b)), 1)
}

impl<'a> Cursor<'a> {
    #[inline]
    fn peek(&self) -> Step<u8> {
        self.b.get(self.i).copied().ok_or(Stop::Incomplete)
    }

    #[inline]
    fn ws(&mut self) -> Step<u8> {
        loop {
            let c = self.peek()?;
            if !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                return Ok(c);
            }
            self.i += 1;
        }
    }

    #[inline]
    fn eat(&mut self, want: u8) -> Step<()> {
        if self.ws()? == want {
            self.i += 1;
            Ok(())
        } else {
            Err(Stop::Unsure)
        }
    }

    /// A string without escapes or control characters: its bytes.
    #[inline]
    fn string(&mut self) -> Step<&'a [u8]> {
        if self.peek()? != b'"' {
            return Err(Stop::Unsure);
        }
        let start = self.i + 1;
        let mut j = start;
        // Eight bytes at a time to the first `"`, `\\` or control byte.
        while let Some(word) = self.b.get(j..j + 8) {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(word);
            let v = u64::from_le_bytes(raw);
            let hit = bytes_equal(v, b'"') | bytes_equal(v, b'\\') | bytes_below(v, 0x20);
            if hit != 0 {
                j += (hit.trailing_zeros() / 8) as usize;
                break;
            }
            j += 8;
        }
        loop {
            match self.b.get(j) {
                None => return Err(Stop::Incomplete),
                Some(b'"') => {
                    self.i = j + 1;
                    return Ok(&self.b[start..j]);
                }
                Some(b'\\' | 0..=0x1f) => return Err(Stop::Unsure),
                Some(_) => j += 1,
            }
        }
    }

    /// A string serde_json reads as `&str` (and so checks is UTF-8), as
    /// bytes. Skipped string values are not checked: serde_json does not
    /// check them either.
    #[inline]
    fn text(&mut self) -> Step<&'a [u8]> {
        let s = self.string()?;
        if s.is_ascii() || std::str::from_utf8(s).is_ok() {
            Ok(s)
        } else {
            Err(Stop::Unsure)
        }
    }

    /// An object key, then the `:`.
    #[inline]
    fn key(&mut self) -> Step<&'a [u8]> {
        let key = self.text()?;
        self.eat(b':')?;
        Ok(key)
    }

    fn digits(&mut self) -> Step<usize> {
        let start = self.i;
        while self.peek()?.is_ascii_digit() {
            self.i += 1;
        }
        Ok(self.i - start)
    }

    /// A JSON number (full grammar). A number touching the end of the bytes
    /// may go on in the next chunk, so that is `Incomplete`.
    fn number(&mut self) -> Step<()> {
        if self.peek()? == b'-' {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => {
                self.i += 1;
                self.peek()?;
            }
            b'1'..=b'9' => {
                self.digits()?;
            }
            _ => return Err(Stop::Unsure),
        }
        if self.peek()? == b'.' {
            self.i += 1;
            if self.digits()? == 0 {
                return Err(Stop::Unsure);
            }
        }
        if matches!(self.peek()?, b'e' | b'E') {
            self.i += 1;
            if matches!(self.peek()?, b'+' | b'-') {
                self.i += 1;
            }
            if self.digits()? == 0 {
                return Err(Stop::Unsure);
            }
        }
        Ok(())
    }

    /// A counter: a plain unsigned integer that fits u64 (serde_json
    /// refuses anything else for a `u64` field).
    fn unsigned(&mut self) -> Step<u64> {
        let start = self.i;
        let mut n: u64 = 0;
        while let c @ b'0'..=b'9' = self.peek()? {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(c - b'0')))
                .ok_or(Stop::Unsure)?;
            self.i += 1;
        }
        let len = self.i - start;
        if len == 0
            || (len > 1 && self.b[start] == b'0')
            || matches!(self.peek()?, b'.' | b'e' | b'E')
        {
            return Err(Stop::Unsure);
        }
        Ok(n)
    }

    fn literal(&mut self, word: &[u8]) -> Step<()> {
        let end = self.i + word.len();
        let have = &self.b[self.i..end.min(self.b.len())];
        if !word.starts_with(have) {
            return Err(Stop::Unsure);
        }
        if have.len() < word.len() {
            return Err(Stop::Incomplete);
        }
        self.i = end;
        Ok(())
    }

    /// `null` (→ `None`) or whatever `some` reads.
    fn nullable<T>(&mut self, some: impl FnOnce(&mut Self) -> Step<T>) -> Step<Option<T>> {
        if self.ws()? == b'n' {
            self.literal(b"null")?;
            Ok(None)
        } else {
            some(self).map(Some)
        }
    }

    /// After a value inside an object: `true` if another member follows.
    #[inline]
    fn more(&mut self) -> Step<bool> {
        match self.ws()? {
            b',' => {
                self.i += 1;
                self.ws()?;
                Ok(true)
            }
            b'}' => {
                self.i += 1;
                Ok(false)
            }
            _ => Err(Stop::Unsure),
        }
    }

    /// Visits the members of an object (the cursor is on `{`).
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a [u8]) -> Step<()>) -> Step<()> {
        self.eat(b'{')?;
        if self.ws()? == b'}' {
            self.i += 1;
            return Ok(());
        }
        loop {
            let key = self.key()?;
            self.ws()?;
            member(self, key)?;
            if !self.more()? {
                return Ok(());
            }
        }
    }

    /// Skips one value of any kind, checking its grammar.
    fn skip(&mut self, depth: u32) -> Step<()> {
        if depth > MAX_DEPTH {
            return Err(Stop::Unsure);
        }
        match self.ws()? {
            b'"' => self.string().map(drop),
            b'{' => self.object(|cur, _| cur.skip(depth + 1)),
            b'[' => {
                self.i += 1;
                if self.ws()? == b']' {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.skip(depth + 1)?;
                    match self.ws()? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return Err(Stop::Unsure),
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(Stop::Unsure),
        }
    }

    fn boolean(&mut self) -> Step<bool> {
        match self.peek()? {
            b't' => self.literal(b"true").map(|()| true),
            b'f' => self.literal(b"false").map(|()| false),
            _ => Err(Stop::Unsure),
        }
    }

    /// One `JobListStub`, as `JobStub`'s derived `Deserialize` reads it.
    fn job(&mut self) -> Step<JobStub> {
        let mut job = JobStub {
            namespace: None,
            job_type: JobType::default(),
            status: JobStatus::default(),
            stop: None,
            job_summary: None,
        };
        let mut seen = [false; 5];
        self.object(|cur, key| {
            let field = match key {
                b"Namespace" => 0,
                b"Type" => 1,
                b"Status" => 2,
                b"Stop" => 3,
                b"JobSummary" => 4,
                _ => return cur.skip(1),
            };
            // serde's derive refuses a duplicate field.
            if std::mem::replace(&mut seen[field], true) {
                return Err(Stop::Unsure);
            }
            match field {
                // `text` checked the bytes are UTF-8: nothing is replaced.
                0 => {
                    job.namespace = cur
                        .nullable(|c| c.text().map(|s| String::from_utf8_lossy(s).into_owned()))?;
                }
                1 => job.job_type = job_type(cur.text()?),
                2 => job.status = job_status(cur.text()?),
                3 => job.stop = cur.nullable(Self::boolean)?,
                _ => job.job_summary = cur.nullable(Self::job_summary)?,
            }
            Ok(())
        })?;
        Ok(job)
    }

    fn job_summary(&mut self) -> Step<JobSummary> {
        let mut summary = JobSummary::default();
        let mut seen = false;
        self.object(|cur, key| {
            if key != b"Summary" {
                return cur.skip(2);
            }
            if std::mem::replace(&mut seen, true) {
                return Err(Stop::Unsure);
            }
            summary.summary = cur.nullable(Self::group_tally)?.unwrap_or_default();
            Ok(())
        })?;
        Ok(summary)
    }

    /// Task group name → counters, tallied like `GroupTally`'s visitor.
    fn group_tally(&mut self) -> Step<GroupTally> {
        let mut tally = GroupTally::default();
        self.object(|cur, _group| {
            let mut counts = [None::<u64>; 4];
            cur.object(|c, key| {
                let slot = match key {
                    b"Complete" => 0,
                    b"Failed" => 1,
                    b"Lost" => 2,
                    b"Unknown" => 3,
                    _ => return c.skip(4),
                };
                if counts[slot].is_some() {
                    return Err(Stop::Unsure);
                }
                counts[slot] = Some(c.unsigned()?);
                Ok(())
            })?;
            let [complete, failed, lost, unknown] = counts.map(Option::unwrap_or_default);
            tally.groups += 1;
            tally.with_complete += u32::from(complete > 0);
            tally.with_failures += u32::from(failed > 0 || lost > 0 || unknown > 0);
            Ok(())
        })?;
        Ok(tally)
    }
}

fn job_type(s: &[u8]) -> JobType {
    match s {
        b"service" => JobType::Service,
        b"batch" => JobType::Batch,
        b"system" => JobType::System,
        b"sysbatch" => JobType::Sysbatch,
        _ => JobType::Other,
    }
}

fn job_status(s: &[u8]) -> JobStatus {
    match s {
        b"pending" => JobStatus::Pending,
        b"running" => JobStatus::Running,
        b"dead" => JobStatus::Dead,
        _ => JobStatus::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `/v1/jobs` element as Nomad 1.11 writes it.
    const JOB: &str = r#"{"ID":"build-1","ParentID":"","Name":"build-1","Namespace":"ci","Datacenters":["dc1","dc2"],"NodePool":"default","Multiregion":null,"Type":"batch","Priority":50,"Periodic":false,"ParameterizedJob":false,"Stop":false,"Status":"dead","StatusDescription":"","JobSummary":{"JobID":"build-1","Namespace":"ci","Summary":{"build":{"Queued":0,"Complete":2,"Failed":0,"Running":0,"Starting":0,"Lost":0,"Unknown":0},"test":{"Queued":0,"Complete":1,"Failed":1,"Running":0,"Starting":0,"Lost":0,"Unknown":0}},"Children":{"Pending":0,"Running":0,"Dead":0},"CreateIndex":1002,"ModifyIndex":1007},"CreateIndex":1002,"ModifyIndex":1007,"JobModifyIndex":1002,"SubmitTime":1772439000000000000,"Meta":{"a":"-1.5e-3"},"X":[-0.25,1E+3,true,null,{}]}"#;

    fn serde(bytes: &[u8]) -> Result<(JobStub, usize), serde_json::Error> {
        let mut it = serde_json::Deserializer::from_slice(bytes).into_iter::<JobStub>();
        match it.next() {
            Some(Ok(job)) => Ok((job, it.byte_offset())),
            Some(Err(e)) => Err(e),
            None => panic!("no value"),
        }
    }

    #[test]
    fn reads_what_serde_reads() {
        let Skim::Done(job, used) = JobStub::skim(JOB.as_bytes()) else {
            panic!("not skimmed");
        };
        assert_eq!(used, JOB.len());
        assert_eq!(job.namespace.as_deref(), Some("ci"));
        assert_eq!(job.job_type, JobType::Batch);
        assert_eq!(job.status, JobStatus::Dead);
        assert_eq!(job.stop, Some(false));
        let tally = job.job_summary.as_ref().map(|s| s.summary);
        assert_eq!(
            tally,
            Some(GroupTally {
                groups: 2,
                with_complete: 2,
                with_failures: 1
            })
        );
        assert_eq!(serde(JOB.as_bytes()).unwrap(), (job, used));
    }

    /// Every job of every recorded Nomad version takes the fast path.
    #[test]
    fn takes_every_fixture_job() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path().join("jobs.json");
            let Ok(text) = std::fs::read(&path) else {
                continue;
            };
            let jobs: Vec<serde_json::Value> = serde_json::from_slice(&text).unwrap();
            for job in jobs {
                let bytes = serde_json::to_vec(&job).unwrap();
                let Skim::Done(skimmed, used) = JobStub::skim(&bytes) else {
                    panic!("{}: not skimmed: {job}", path.display());
                };
                assert_eq!(
                    serde(&bytes).unwrap(),
                    (skimmed, used),
                    "{}",
                    path.display()
                );
                seen += 1;
            }
        }
        assert!(seen >= 6, "only {seen} fixture jobs");
    }

    #[test]
    fn stops_after_the_element_and_allows_whitespace() {
        let spaced = format!(" {{ \"Status\" :\t\"running\" ,\n\"Stop\":null }} ,{JOB}");
        let Skim::Done(job, used) = JobStub::skim(spaced.trim_start().as_bytes()) else {
            panic!("not skimmed");
        };
        assert_eq!(&spaced.trim_start()[used..used + 2], " ,");
        assert_eq!(job.status, JobStatus::Running);
        assert_eq!(job.stop, None);
        assert_eq!(job.job_summary, None);
    }

    #[test]
    fn every_cut_is_incomplete() {
        for end in 0..JOB.len() {
            assert_eq!(
                JobStub::skim(&JOB.as_bytes()[..end]),
                Skim::Incomplete,
                "cut at {end}: {}",
                &JOB[..end]
            );
        }
    }

    #[test]
    fn leaves_the_unusual_to_serde() {
        for odd in [
            r#"{"Namespace":"c\"i"}"#,              // escape
            r#"{"ID":"a\u0041"}"#,                  // escape in a skipped value
            "{\"ID\":\"a\tb\"}",                    // control byte
            r#"{"Status":"dead","Status":"dead"}"#, // duplicate field
            r#"{"Type":null}"#,                     // not a string
            r#"{"Stop":"yes"}"#,
            r#"{"JobSummary":{"Summary":{"g":{"Complete":1.0}}}}"#,
            r#"{"JobSummary":{"Summary":{"g":{"Complete":-1}}}}"#,
            r#"{"JobSummary":{"Summary":{"g":{"Complete":01}}}}"#,
            r#"{"JobSummary":{"Summary":{"g":{"Complete":18446744073709551616}}}}"#,
            r#"{"JobSummary":{"Summary":{"g":null}}}"#,
            r#"{"JobSummary":["x"]}"#,
            r#"["ns","batch"]"#,
            r#"{"ID":01}"#,
            r#"{"ID":1.}"#,
            r#"{"ID":-}"#,
            r#"{"ID":tru}"#,
            r#"{"ID":[1,]}"#,
            r#"{"ID":1,}"#,
            r#"{"ID" 1}"#,
            r#"{ID:1}"#,
        ] {
            assert_eq!(JobStub::skim(odd.as_bytes()), Skim::Unsure, "{odd}");
        }
    }

    #[test]
    fn non_utf8_is_checked_where_serde_checks_it() {
        // A skipped value is not checked (nor by serde_json); a key or a
        // value that is read is.
        let skipped = b"{\"ID\":\"\xff\",\"Status\":\"dead\"}";
        let Skim::Done(job, _) = JobStub::skim(skipped) else {
            panic!("not skimmed");
        };
        assert_eq!(serde(skipped).unwrap().0, job);
        for read in [
            &b"{\"Status\":\"\xff\"}"[..],
            b"{\"\xff\":1}",
            b"{\"JobSummary\":{\"Summary\":{\"\xff\":{}}}}",
            b"{\"JobSummary\":{\"Summary\":{\"g\":{\"\xff\":1}}}}",
        ] {
            assert_eq!(JobStub::skim(read), Skim::Unsure);
            assert!(serde(read).is_err());
        }
    }

    #[test]
    fn deep_nesting_goes_to_serde() {
        let deep = format!(r#"{{"X":{}{}}}"#, "[".repeat(70), "]".repeat(70));
        assert_eq!(JobStub::skim(deep.as_bytes()), Skim::Unsure);
        let ok = format!(r#"{{"X":{}{}}}"#, "[".repeat(60), "]".repeat(60));
        assert!(matches!(JobStub::skim(ok.as_bytes()), Skim::Done(..)));
    }
}
