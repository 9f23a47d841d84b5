//! The scenarios: what each prepares, what its connections send, and how its result is labelled.
//! Accounts and the filled inbox are prepared once per invocation and shared by the scenarios.

use std::time::{SystemTime, UNIX_EPOCH};

use sealpost_client::api::Api;
use serde_json::json;

use crate::cli::{RunArgs, Scenario};
use crate::http::{Req, Target};
use crate::prepare::{self, Account};
use crate::report::{Context, Outcome};
use crate::runner::{self, Plan, Timing};
use crate::stats::CpuMeter;
use crate::streams;

/// Distinct prepared envelopes each sending connection cycles through.
const ENVELOPES_PER_CONNECTION: usize = 8;
/// In `mixed`, one request in this many is a send; the others read the inbox.
const MIXED_EVERY: usize = 10;

/// One invocation: the server, the options, and what was prepared so far.
pub struct Bench {
    args: RunArgs,
    api: Api,
    target: Target,
    stream_target: Target,
    pub ctx: Context,
    pool: Vec<Account>,
    owner: Option<Account>,
}

impl std::fmt::Debug for Bench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bench")
            .field("target", &self.target)
            .field("accounts", &self.pool.len())
            .finish_non_exhaustive()
    }
}

impl Bench {
    pub async fn new(args: RunArgs, ctx: Context) -> anyhow::Result<Bench> {
        let target = Target::resolve(&args.url).await?;
        let stream_target = match &args.stream_url {
            Some(url) => Target::resolve(url).await?,
            None => target.clone(),
        };
        let http = sealpost_client::api::Api::new(&args.url);
        Ok(Bench {
            api: http,
            target,
            stream_target,
            ctx,
            pool: Vec::new(),
            owner: None,
            args,
        })
    }

    fn timing(&self, rate: Option<f64>) -> Timing {
        Timing {
            warmup: self.args.warmup,
            window: self.args.duration,
            repeat: self.args.repeat,
            rate,
        }
    }

    /// Makes sure at least `n` pool accounts are signed in.
    async fn ensure_pool(&mut self, n: usize) -> anyhow::Result<()> {
        if self.pool.len() >= n {
            return Ok(());
        }
        let emails = (self.pool.len()..n)
            .map(|i| prepare::email(&self.args.tag, &i.to_string()))
            .collect();
        eprintln!("  preparing accounts {}..{n}", self.pool.len());
        let more = prepare::accounts(&self.api, emails).await?;
        self.pool.extend(more);
        Ok(())
    }

    /// Makes sure the inbox account exists and its mailbox holds `--fill` entries.
    async fn ensure_inbox(&mut self) -> anyhow::Result<()> {
        self.ensure_pool(self.args.accounts).await?;
        if self.owner.is_none() {
            let email = prepare::email(&self.args.tag, "inbox");
            let mut one = prepare::accounts(&self.api, vec![email]).await?;
            self.owner = one.pop();
        }
        let Some(owner) = &self.owner else {
            anyhow::bail!("the inbox account could not be prepared");
        };
        prepare::fill(
            &self.api,
            &self.target,
            owner,
            &self.pool[..self.args.accounts],
            self.args.fill,
            self.args.connections,
        )
        .await?;
        let newest = prepare::newest_seq(&self.api, owner).await?;
        eprintln!("  inbox: {newest} entries");
        Ok(())
    }

    /// Runs one scenario (a sweep runs several) and answers its results.
    pub async fn run(&mut self, scenario: Scenario) -> anyhow::Result<Vec<Outcome>> {
        let c = self.args.connections;
        let rate = self.args.rate;
        match scenario {
            Scenario::Baseline => {
                let req = Req::get("/healthz", None)?;
                let plan = Plan {
                    kinds: vec!["healthz"],
                    workers: vec![vec![(0, req)]; c],
                    chain: None,
                };
                Ok(vec![self.timed("baseline", &plan, rate).await?])
            }
            Scenario::Send => {
                let plan = self.send_plan().await?;
                Ok(vec![self.timed("send", &plan, rate).await?])
            }
            Scenario::Sweep => {
                let plan = self.send_plan().await?;
                let mut out = Vec::new();
                for r in self.args.rates.clone() {
                    let mut o = self.timed("send", &plan, Some(r)).await?;
                    o.extra.insert("sweep".into(), json!(true));
                    out.push(o);
                }
                Ok(out)
            }
            Scenario::Inbox => {
                self.ensure_inbox().await?;
                let req = self.inbox_request()?;
                let plan = Plan {
                    kinds: vec!["inbox"],
                    workers: vec![vec![(0, req)]; c],
                    chain: None,
                };
                let mut o = self.timed("inbox", &plan, rate).await?;
                o.extra.insert("fill".into(), json!(self.args.fill));
                o.extra.insert("page".into(), json!(self.args.page));
                Ok(vec![o])
            }
            Scenario::Login => {
                let n = self.args.accounts;
                self.ensure_pool(n).await?;
                let bodies = self.pool[..n]
                    .iter()
                    .map(|a| Req::post_json("/v1/auth/login", None, prepare::login_body(a)?))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let workers = (0..c)
                    .map(|w| (0..n).map(|i| (0, bodies[(w + i) % n].clone())).collect())
                    .collect();
                let plan = Plan {
                    kinds: vec!["login"],
                    workers,
                    chain: None,
                };
                Ok(vec![self.timed("login", &plan, rate).await?])
            }
            Scenario::Refresh => {
                let n = self.args.accounts;
                self.ensure_pool(n).await?;
                // A session of its own per connection (logging in is not timed).
                let mut workers = Vec::with_capacity(c);
                for w in 0..c {
                    let token = prepare::new_session(&self.api, &self.pool[w % n]).await?;
                    workers.push(vec![(0, prepare::refresh_request(&token)?)]);
                }
                let plan = Plan {
                    kinds: vec!["refresh"],
                    workers,
                    chain: Some(prepare::next_refresh),
                };
                Ok(vec![self.timed("refresh", &plan, rate).await?])
            }
            Scenario::Mixed => {
                self.ensure_inbox().await?;
                let sends = self.send_plan().await?;
                let inbox = self.inbox_request()?;
                let workers = sends
                    .workers
                    .iter()
                    .enumerate()
                    .map(|(w, own)| {
                        (0..MIXED_EVERY * own.len())
                            .map(|i| {
                                if i % MIXED_EVERY == w % MIXED_EVERY {
                                    (1, own[(i / MIXED_EVERY) % own.len()].1.clone())
                                } else {
                                    (0, inbox.clone())
                                }
                            })
                            .collect()
                    })
                    .collect();
                let plan = Plan {
                    kinds: vec!["inbox", "send"],
                    workers,
                    chain: None,
                };
                let mut o = self.timed("mixed", &plan, rate).await?;
                o.extra.insert("fill".into(), json!(self.args.fill));
                Ok(vec![o])
            }
            Scenario::Push => {
                self.ensure_pool((2 * c).max(self.args.accounts)).await?;
                let mut pairs = Vec::with_capacity(c);
                for i in 0..c {
                    let receiver = &self.pool[2 * i];
                    let after = prepare::newest_seq(&self.api, receiver).await?;
                    pairs.push((receiver, &self.pool[2 * i + 1], after));
                }
                let timing = self.timing(rate);
                let mut o = streams::push(
                    &self.target,
                    &self.stream_target,
                    pairs,
                    timing,
                    self.args.server_pid,
                )
                .await?;
                o.server_rss_kib = self.args.server_pid.and_then(crate::stats::rss_kib);
                Ok(vec![o])
            }
            Scenario::IdleStreams => {
                let n = self.args.accounts;
                self.ensure_pool(n).await?;
                let mut accounts = Vec::with_capacity(n);
                for a in &self.pool[..n] {
                    accounts.push((a, prepare::newest_seq(&self.api, a).await?));
                }
                let extra = streams::idle(
                    &self.stream_target,
                    &accounts,
                    self.args.count,
                    self.args.duration,
                    self.args.server_pid,
                )
                .await?;
                let mut o = Outcome::from_windows(
                    "idle-streams",
                    &["stream"],
                    &[],
                    self.args.count,
                    Timing {
                        repeat: 0,
                        ..self.timing(None)
                    },
                    Default::default(),
                );
                o.server_rss_kib = self.args.server_pid.and_then(crate::stats::rss_kib);
                o.extra = extra;
                Ok(vec![o])
            }
            Scenario::All => {
                let mut out = Vec::new();
                for s in Scenario::expand(&[Scenario::All]) {
                    out.extend(Box::pin(self.run(s)).await?);
                }
                Ok(out)
            }
        }
    }

    /// `GET` the newest page of the inbox account's mailbox.
    fn inbox_request(&self) -> anyhow::Result<Req> {
        let Some(owner) = &self.owner else {
            anyhow::bail!("the inbox is not prepared");
        };
        Req::get(
            &format!("/v1/messages?before={}&limit={}", i64::MAX, self.args.page),
            Some(owner.token.expose()),
        )
    }

    /// Connection `w` sends from pool account `w mod n` to account `w + 1 mod n`: many mailboxes,
    /// so that sends do not queue on one mailbox counter.
    async fn send_plan(&mut self) -> anyhow::Result<Plan> {
        let n = self.args.accounts;
        self.ensure_pool(n).await?;
        let mut workers = Vec::with_capacity(self.args.connections);
        for w in 0..self.args.connections {
            let (from, to) = (&self.pool[w % n], &self.pool[(w + 1) % n]);
            let reqs = prepare::send_requests(from, to, ENVELOPES_PER_CONNECTION)?;
            workers.push(reqs.into_iter().map(|r| (0, r)).collect());
        }
        Ok(Plan {
            kinds: vec!["send"],
            workers,
            chain: None,
        })
    }

    /// Runs a plan with CPU and RSS readings around it.
    async fn timed(&self, name: &str, plan: &Plan, rate: Option<f64>) -> anyhow::Result<Outcome> {
        let timing = self.timing(rate);
        let meter = CpuMeter::start(self.args.server_pid);
        let windows = runner::run(&self.target, plan, timing).await?;
        let cpu = meter.stop();
        let mut o =
            Outcome::from_windows(name, &plan.kinds, &windows, plan.workers.len(), timing, cpu);
        o.server_rss_kib = self.args.server_pid.and_then(crate::stats::rss_kib);
        Ok(o)
    }
}

/// Unix milliseconds now, for the result lines.
pub fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}
