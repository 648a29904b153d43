//! Reading Nomad's list endpoints (`/v1/jobs`, `/v1/nodes`,
//! `/v1/allocations`, `/v1/node/<id>/allocations`): page by page where the
//! version pages (`next_token`, guarded against repeated tokens, GH-25435),
//! as blocking queries when asked (an answer whose `X-Nomad-Index` did not
//! move is left unread), and decoded one element at a time so that a list
//! is never held in memory. See `docs/nomad-api.md` for what each version
//! answers.

use std::time::Duration;

use super::api::{content_type, header_u64, NomadApi, MAX_ELEMENT_BYTES, MAX_LIST_BYTES};
use super::error::NomadError;
use super::skim::ListElement;
use super::stream::{ArrayDecoder, DecodeError};

impl NomadApi {
    /// Reads a list endpoint, page by page when `per_page` is set (Nomad
    /// 1.3+), handing each element to `on_item` as it is decoded; the list
    /// itself is never held in memory. With `block`, the first request is a
    /// blocking query, and an answer whose `X-Nomad-Index` equals
    /// `block.index` is `Unchanged` and its body is not read.
    ///
    /// # Errors
    ///
    /// Any `NomadError`, including `Paging` when Nomad hands out the same
    /// page token twice (GH-25435).
    pub async fn list<T: ListElement>(
        &self,
        query: &ListQuery<'_>,
        mut on_item: impl FnMut(T),
    ) -> Result<ListOutcome, NomadError> {
        self.list_indexed(query, |_, item| on_item(item)).await
    }

    /// `list`, handing each element with the `X-Nomad-Index` of the page it
    /// came in (0 when the answer had none): the index the element is
    /// known to be current at.
    ///
    /// # Errors
    ///
    /// As `list`.
    pub async fn list_indexed<T: ListElement>(
        &self,
        query: &ListQuery<'_>,
        mut on_item: impl FnMut(u64, T),
    ) -> Result<ListOutcome, NomadError> {
        let mut seen_tokens = std::collections::HashSet::new();
        let mut next_token: Option<String> = None;
        let mut first_index = None;
        let mut items = 0u64;
        let mut pages = 0u32;
        loop {
            let mut params: Vec<(&str, String)> =
                query.params.iter().map(|(k, v)| (*k, v.clone())).collect();
            if let Some(n) = query.per_page {
                params.push(("per_page", n.to_string()));
            }
            if let Some(token) = &next_token {
                params.push(("next_token", token.clone()));
            }
            let block = query.block.filter(|_| pages == 0);
            let body_timeout = query.timeout.unwrap_or(self.timeout);
            let mut timeout = body_timeout;
            if let Some(b) = block {
                params.push(("index", b.index.to_string()));
                params.push(("wait", format!("{}ms", b.wait.as_millis())));
                // Nomad adds up to wait/16 of jitter before answering.
                timeout += b.wait + b.wait / 16;
            }
            let borrowed: Vec<(&str, &str)> =
                params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let page = self
                .read_page(
                    query.path,
                    &borrowed,
                    (timeout, body_timeout),
                    block.map(|b| b.index),
                    &mut on_item,
                )
                .await?;
            let Some(page) = page else {
                return Ok(ListOutcome::Unchanged {
                    index: block.map_or(0, |b| b.index),
                });
            };
            pages += 1;
            items += page.items;
            if pages == 1 {
                first_index = page.index;
            }
            match page.next_token {
                Some(token) if query.per_page.is_some() => {
                    if !seen_tokens.insert(token.clone()) {
                        return Err(NomadError::Paging {
                            path: query.path.to_owned(),
                        });
                    }
                    next_token = Some(token);
                }
                _ => break,
            }
        }
        Ok(ListOutcome::Read {
            index: first_index,
            items,
            pages,
        })
    }

    /// Reads one page of a list. `None` when `unchanged_at` equals the
    /// answer's `X-Nomad-Index` (a blocking query that timed out): the body
    /// is then left unread.
    async fn read_page<T: ListElement>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        (timeout, body_timeout): (Duration, Duration),
        unchanged_at: Option<u64>,
        on_item: &mut impl FnMut(u64, T),
    ) -> Result<Option<Page>, NomadError> {
        let work = async {
            let response = self.send(path, query, timeout).await?;
            let index = header_u64(&response, "x-nomad-index");
            if unchanged_at.is_some() && index == unchanged_at {
                return Ok(None);
            }
            let next_token = response
                .headers()
                .get("x-nomad-nexttoken")
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map(str::to_owned);
            let content_type = content_type(&response);
            let mut decoder = ArrayDecoder::new(MAX_ELEMENT_BYTES);
            let mut items = 0u64;
            let mut total = 0u64;
            let at = index.unwrap_or(0);
            let mut take = |item: T| {
                on_item(at, item);
                items += 1;
            };
            let decode_err = |e: DecodeError| match e {
                DecodeError::ElementTooLarge(limit) => NomadError::TooLarge {
                    path: path.to_owned(),
                    limit_bytes: limit as u64,
                },
                other => NomadError::Decode {
                    path: path.to_owned(),
                    content_type: content_type.clone(),
                    source: Box::new(other),
                },
            };
            // A blocking query may wait for its answer; the body, once it
            // comes, must not take longer than a plain read.
            let body_deadline = tokio::time::Instant::now() + body_timeout;
            let mut response = response;
            while let Some(chunk) = self.next_chunk(&mut response, path, body_deadline).await? {
                total += chunk.len() as u64;
                if total > MAX_LIST_BYTES {
                    return Err(NomadError::TooLarge {
                        path: path.to_owned(),
                        limit_bytes: MAX_LIST_BYTES,
                    });
                }
                decoder.feed(&chunk, &mut take).map_err(decode_err)?;
            }
            decoder.finish(&mut take).map_err(decode_err)?;
            Ok(Some(Page {
                index,
                next_token,
                items,
            }))
        };
        tokio::time::timeout(timeout, work)
            .await
            .unwrap_or_else(|_| Err(self.timeout_error(path)))
    }
}

/// How to read a list endpoint.
#[derive(Debug, Clone)]
pub struct ListQuery<'a> {
    pub path: &'a str,
    /// Query parameters besides paging and blocking (`namespace`, `filter`…).
    pub params: Vec<(&'static str, String)>,
    /// Page size (Nomad 1.3+); `None` reads the whole list in one answer.
    pub per_page: Option<u32>,
    /// Make the first request a blocking query.
    pub block: Option<Block>,
    /// Deadline per page instead of the client's request timeout (a full
    /// read of 100k jobs may need longer than one poll interval).
    pub timeout: Option<Duration>,
}

impl<'a> ListQuery<'a> {
    #[must_use]
    pub fn new(path: &'a str) -> Self {
        Self {
            path,
            params: Vec::new(),
            per_page: None,
            block: None,
            timeout: None,
        }
    }
}

/// A blocking query: answer once the index moves past `index`, or after
/// `wait` (Nomad caps it at 5 minutes) with the current data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub index: u64,
    pub wait: Duration,
}

/// What a list read produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListOutcome {
    /// A blocking query timed out with the index unchanged; nothing was read.
    Unchanged { index: u64 },
    /// The list was read; `index` is the first page's `X-Nomad-Index`.
    Read {
        index: Option<u64>,
        items: u64,
        pages: u32,
    },
}

struct Page {
    index: Option<u64>,
    next_token: Option<String>,
    items: u64,
}
