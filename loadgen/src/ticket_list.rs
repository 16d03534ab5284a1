//! `loadgen ticket-list`: the office console's ticket list over 100,000
//! tickets (docs/BENCHMARKS.md, "The office console's ticket list").
//!
//! Seeds one estate's tickets straight into a fresh sled directory, as the
//! report benchmark does: each ticket lives its life through the core's own
//! functions (`ticket_life`, with this benchmark's mix), every deadline
//! that has passed undone is recorded missed as the scheduler would have,
//! and `Store::stage_ticket`
//! writes it with its card, as the writer writes it. Then the real release
//! server starts on that directory with `--demo` (the demo estate's users,
//! passwords and calendar); one more ticket is recorded and dispatched over
//! HTTP, as `kefu` and `diaodu`; and, logged in as `kefu`, the load
//! generator times `GET /api/v1/ticket-cards` for each case one request at
//! a time, from sending it to having the whole body, after warm-ups. Before
//! timing, each case's answer is checked against the seeded cards with the
//! server's own filter (`CardFilter`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;
use server::store::{Changes, Store};
use sync_protocol::{
    Area, CardFilter, Category, DeviceId, EstateId, Intake, LoginRequest, LoginResponse,
    OfficeActionRequest, OfficeOp, Reporter, SerialMonth, Source, StatusFilter, Ticket, TicketCard,
    TicketCardPage, TicketId, TicketKind, UserId, WorkingCalendar, ticket_deadlines,
};

use crate::latency::{Percentiles, milliseconds};
use crate::report::Machine;
use crate::server_process::{ServerProcess, disk_usage, wait_for_quiet};
use crate::ticket_life::{Fates, Lives, Mix, Random, Reports};

/// The goal: a search or a first page within this, server-side.
const TARGET_MS: f64 = 200.0;
/// Tickets per atomic group while seeding, as the other seeders write them.
const TICKETS_PER_GROUP: usize = 2_000;
/// The demo estate's technicians, who get the dispatched tickets.
const TECHNICIANS: [&str; 3] = ["li", "zhang", "wang"];
/// Private units: buildings × entrances × floors × flats per floor.
const BUILDINGS: u64 = 30;
const ENTRANCES: u64 = 4;
const FLOORS: u64 = 33;
const FLATS_PER_FLOOR: u64 = 4;
const UNITS: u64 = BUILDINGS * ENTRANCES * FLOORS * FLATS_PER_FLOOR;
const PUBLIC_PLACES: [&str; 5] = ["大堂", "电梯厅", "地下车库", "楼顶", "消防通道"];
/// A search that no seeded field holds, but the key `"phone"` of every
/// card's JSON does: the byte test passes every card, so each is decoded.
const WORST_TEXT: &str = "phone";
/// A search that nothing holds, not even the bytes of a card.
const NOTHING_TEXT: &str = "无此单元 nowhere";
const SERVER_STARTUP_TIMEOUT: Duration = Duration::from_secs(300);
const SERVER_STOP_TIMEOUT: Duration = Duration::from_secs(60);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Args, Debug)]
pub struct TicketListArgs {
    /// Tickets seeded in estate E01 (a converted work order adds its
    /// coordination ticket on top).
    #[arg(long, default_value_t = 100_000)]
    tickets: usize,
    /// The tickets are received evenly over this many days, up to ten
    /// minutes before the run.
    #[arg(long, default_value_t = 30)]
    days: i64,
    /// Timed requests of each case, one at a time.
    #[arg(long, default_value_t = 50)]
    runs: usize,
    /// Untimed requests of each case before the timed ones.
    #[arg(long, default_value_t = 5)]
    warmups: usize,
    /// Cards a page asks for (`limit`, 1-500).
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Pages followed by `next_after` before the deep page that is timed.
    #[arg(long, default_value_t = 20)]
    deep_pages: usize,
    /// Seed of the ticket mix (the same seed gives the same tickets).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The server binary; defaults to estate-sync next to this binary.
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// The sled directory to seed and serve; must not exist yet. Defaults to
    /// a fresh temporary directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Keep the data directory afterwards.
    #[arg(long)]
    keep: bool,
    /// Before each case, wait up to this long for the machine to be idle.
    #[arg(long, default_value_t = 30)]
    quiet_wait_seconds: u64,
    /// Write the measurements as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Case {
    name: String,
    /// The query string after `?`.
    query: String,
    /// Seeded cards the filter keeps (over the whole estate).
    matching: usize,
    /// Cards in the answer, and its size.
    cards: usize,
    answer_bytes: usize,
    /// The first (untimed) request of the case.
    first_ms: f64,
    latency: Percentiles,
    /// The server's CPU time over the timed requests, per request.
    server_cpu_ms: f64,
    /// Busy cores of the whole machine just before the timed requests.
    busy_cores_before: f64,
    /// Whether the case is a search or a first page, held to the target.
    targeted: bool,
}

#[derive(Debug, Serialize)]
struct TicketListReport {
    machine: Machine,
    tickets: usize,
    days: i64,
    by_status: BTreeMap<String, usize>,
    open: usize,
    overdue: usize,
    per_technician: BTreeMap<String, usize>,
    mean_card_json_bytes: usize,
    seed_seconds: f64,
    store_bytes_after_seeding: u64,
    store_bytes_at_end: u64,
    server_resident_mib: f64,
    server_peak_resident_mib: f64,
    limit: usize,
    runs: usize,
    warmups: usize,
    cases: Vec<Case>,
    target_ms: f64,
    /// Every targeted case's p90 within the target.
    target_met: bool,
}

pub fn run(args: &TicketListArgs) -> Result<bool, String> {
    if args.tickets == 0 || args.tickets > 10_000_000 || args.runs == 0 || args.days < 1 {
        return Err("--tickets must be 1-10,000,000, --runs and --days at least 1".to_owned());
    }
    if !(1..=500).contains(&args.limit) {
        return Err("--limit must be 1-500".to_owned());
    }
    let server_bin = match &args.server_bin {
        Some(path) => path.clone(),
        None => crate::default_server_bin()?,
    };
    if !server_bin.is_file() {
        return Err(format!(
            "no server binary at {}; build it with `cargo build --release -p server`",
            server_bin.display()
        ));
    }
    let (data_dir, temporary) = match &args.data_dir {
        Some(path) if path.exists() => {
            return Err(format!(
                "{} exists; pass a path that does not, so every run starts from the same state",
                path.display()
            ));
        }
        Some(path) => (path.clone(), None),
        None => {
            let temporary = tempfile::Builder::new()
                .prefix("ticket-list-")
                .tempdir()
                .map_err(|e| format!("a temporary directory: {e}"))?;
            (temporary.path().join("data"), Some(temporary))
        }
    };

    eprintln!(
        "seeding {} tickets of estate E01 over {} days into {} …",
        args.tickets,
        args.days,
        data_dir.display()
    );
    let seeded = seed(&data_dir, args)?;
    let (store_bytes_after_seeding, _) = disk_usage(&data_dir).map_err(|e| e.to_string())?;
    eprintln!(
        "seeded {} tickets in {:.1} s ({} MiB); starting {} --demo …",
        seeded.cards.len(),
        seeded.elapsed.as_secs_f64(),
        store_bytes_after_seeding / (1024 * 1024),
        server_bin.display()
    );

    let secret = server::auth::random_secret();
    let server = ServerProcess::start_serving(
        &server_bin,
        &data_dir,
        &secret,
        SERVER_STARTUP_TIMEOUT,
        &[],
        &["--demo"],
    )?;
    if !server.address.ip().is_loopback() {
        return Err(format!(
            "the server listens on {}, not on loopback",
            server.address
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let measured = measure(args, &seeded, &server, &runtime);
    let (outcome, usage) = server.finish(measured, SERVER_STOP_TIMEOUT)?;
    runtime.shutdown_timeout(Duration::from_secs(5));
    let (store_bytes_at_end, _) = disk_usage(&data_dir).map_err(|e| e.to_string())?;

    let mut by_status = BTreeMap::new();
    let mut per_technician = BTreeMap::new();
    for card in &seeded.cards {
        let status = serde_json::to_value(card.status)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default();
        *by_status.entry(status).or_insert(0) += 1;
        if let Some(technician) = &card.assigned_technician {
            *per_technician.entry(technician.to_string()).or_insert(0) += 1;
        }
    }
    let card_bytes: usize = seeded
        .cards
        .iter()
        .map(|card| serde_json::to_vec(card).map_or(0, |json| json.len()))
        .sum();
    let target_met = outcome
        .iter()
        .filter(|case| case.targeted)
        .all(|case| case.latency.p90_ms <= TARGET_MS);
    let report = TicketListReport {
        machine: crate::machine(),
        tickets: seeded.cards.len(),
        days: args.days,
        by_status,
        open: matching(
            &seeded.cards,
            &filter(|f| f.status = Some(StatusFilter::Open)),
        ),
        overdue: matching(&seeded.cards, &filter(|f| f.overdue = true)),
        per_technician,
        mean_card_json_bytes: card_bytes / seeded.cards.len(),
        seed_seconds: seeded.elapsed.as_secs_f64(),
        store_bytes_after_seeding,
        store_bytes_at_end,
        server_resident_mib: mib(usage.resident_bytes),
        server_peak_resident_mib: mib(usage.peak_resident_bytes),
        limit: args.limit,
        runs: args.runs,
        warmups: args.warmups,
        cases: outcome,
        target_ms: TARGET_MS,
        target_met,
    };
    print_summary(&report);
    crate::report::write_json(args.json.as_ref(), &report)?;
    if args.keep {
        eprintln!("kept the data directory {}", data_dir.display());
        if let Some(temporary) = temporary {
            let _ = temporary.keep();
        }
    }
    Ok(true)
}

// ---- Seeding -------------------------------------------------------------------

/// What seeding left for the cases: every seeded card, newest first (the
/// order of the list), and the texts to search for.
struct Seeded {
    cards: Vec<TicketCard>,
    elapsed: Duration,
    searches: Searches,
}

struct Searches {
    serial: String,
    unit_prefix: String,
    phone: String,
}

fn seed(data_dir: &std::path::Path, args: &TicketListArgs) -> Result<Seeded, String> {
    let started = Instant::now();
    let store = Store::open(data_dir).map_err(|e| e.to_string())?;
    let mut counters = store.counters().map_err(|e| e.to_string())?;
    let calendar = server::demo::demo_calendar();
    let now = Utc::now();
    let mut lives = lives(&calendar, now, args);
    let mut cards = Vec::with_capacity(args.tickets + args.tickets / 20);
    let mut changes = Changes::default();
    let mut in_group = 0;
    for _ in 0..args.tickets {
        for ticket in lives.next_report() {
            let ticket = record_missed_deadlines(ticket, &calendar, now);
            store
                .stage_ticket(&mut changes, &mut counters, None, &ticket)
                .map_err(|e| e.to_string())?;
            cards.push(TicketCard::of(&ticket));
            in_group += 1;
        }
        if in_group >= TICKETS_PER_GROUP {
            store
                .apply(std::mem::take(&mut changes))
                .map_err(|e| e.to_string())?;
            in_group = 0;
        }
    }
    // The writer numbers the tickets it records after these.
    counters.tickets = lives.tickets_made();
    changes.put_ticket_counter(&counters);
    for number in lives.last_serials() {
        changes.put_last_serial(&number);
    }
    store.apply(changes).map_err(|e| e.to_string())?;
    store.flush().map_err(|e| e.to_string())?;
    drop(store);

    // The list's order: by receipt time, then ticket id (the card key).
    cards.sort_by(|a, b| {
        (b.received_at.timestamp_micros(), b.ticket_id.as_str())
            .cmp(&(a.received_at.timestamp_micros(), a.ticket_id.as_str()))
    });
    let searches = choose_searches(&cards, args.seed)?;
    Ok(Seeded {
        cards,
        elapsed: started.elapsed(),
        searches,
    })
}

/// The texts the cases search for: the serial number of a ticket half way
/// down the list, a unit prefix found in about ten cards, and the phone of
/// an owner who reported a few times.
fn choose_searches(cards: &[TicketCard], seed: u64) -> Result<Searches, String> {
    let serial = cards[cards.len() / 2..]
        .iter()
        .find_map(|card| card.serial_number.as_ref())
        .ok_or("no seeded ticket has a serial number")?
        .to_string();
    // A prefix of a unit without its last digit (the floor and the first
    // digit of the flat), among those whose count is nearest ten.
    let mut by_prefix: HashMap<&str, usize> = HashMap::new();
    for card in cards {
        if card.area == Area::PrivateUnit {
            let location = card.location.as_str();
            *by_prefix
                .entry(&location[..location.len() - 1])
                .or_insert(0) += 1;
        }
    }
    let mut candidates: Vec<(&str, usize)> = by_prefix.into_iter().collect();
    candidates.sort_by_key(|(prefix, count)| (count.abs_diff(10), *prefix));
    let mut unit_prefix = None;
    let mut best = usize::MAX;
    for (prefix, _) in candidates.iter().take(20) {
        let matching = matching(cards, &text_filter(prefix)?);
        if matching.abs_diff(10) < best {
            best = matching.abs_diff(10);
            unit_prefix = Some(prefix.to_string());
        }
    }
    let unit_prefix = unit_prefix.ok_or("no private unit was seeded")?;
    let mut random = Random(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
    let phone = cards[random.between(0, cards.len() as i64 - 1) as usize]
        .reporter
        .phone
        .clone()
        .ok_or("a seeded report without a phone")?;
    Ok(Searches {
        serial,
        unit_prefix,
        phone,
    })
}

/// Every deadline that has passed undone, recorded missed, as the server's
/// scheduler would have: at start it then finds nothing to record but the
/// deadlines that pass from now on.
fn record_missed_deadlines(
    mut ticket: Ticket,
    calendar: &WorkingCalendar,
    now: DateTime<Utc>,
) -> Ticket {
    let missed: Vec<_> = ticket_deadlines(&ticket, calendar)
        .into_iter()
        .filter(|deadline| deadline.done_at.is_none() && deadline.due_at < now)
        .collect();
    for deadline in missed {
        // After the ticket's last change, so that its history stays in order.
        let at =
            (deadline.due_at.max(ticket.updated_at) + chrono::Duration::milliseconds(1)).min(now);
        if let Some(next) = sync_protocol::due::record_deadline_missed(
            &ticket,
            calendar,
            deadline.rule,
            deadline.due_at,
            at,
        ) {
            ticket = next;
        }
    }
    ticket
}

/// The ticket list's mix: the demo estate's three technicians, repairs and
/// reworks that mostly close, and for the few still open a little of each
/// stage. A life stops at the run's moment, so the newest are still under way.
const MIX: Mix = Mix {
    verbal_closed: 0.95,
    public_work_orders: 0.2,
    appointments: None,
    // 3 % each never dispatched, cancelled, never reached; 2 % converted the
    // next day; 3 % left in progress and 3 % completed, not closed; the rest
    // closed, 80 % of them followed up.
    fates: Fates {
        undispatched: 0.03,
        cancelled: 0.06,
        unreached: 0.09,
        converted: 0.11,
        in_progress: 0.14,
        unclosed: 0.17,
    },
    arrival_minutes: (3, 40),
    varied_ratings: false,
    coordination_dispatcher: "diaodu",
    coordination_work_done: "与业主沟通并处理 talked it through and fixed it",
};

/// The estate's reports, received evenly over the days up to ten minutes
/// before the run: 10 % verbal dispatches (security, environment), 75 %
/// work orders (85 % repairs, the rest rework), 15 % coordination tickets
/// (owner communication).
struct Estate {
    estate: EstateId,
    calendar: WorkingCalendar,
    from: DateTime<Utc>,
    /// Milliseconds between two reports' receipts.
    step_ms: i64,
    /// Reports received so far.
    received: i64,
}

fn lives(calendar: &WorkingCalendar, now: DateTime<Utc>, args: &TicketListArgs) -> Lives<Estate> {
    // The newest seeded ticket is ten minutes old: the demo's tickets
    // and the one recorded over HTTP come after it.
    let until = now - chrono::Duration::minutes(10);
    let from = until - chrono::Duration::days(args.days);
    let estate = Estate {
        estate: EstateId::parse("E01").expect("a valid estate"),
        calendar: calendar.clone(),
        from,
        step_ms: ((until - from).num_milliseconds() / args.tickets as i64).max(1),
        received: 0,
    };
    let technicians = TECHNICIANS
        .iter()
        .map(|name| {
            (
                UserId::parse(name).expect("a valid user"),
                DeviceId::parse(&format!("hh-{name}")).expect("a valid device"),
            )
        })
        .collect();
    Lives::new(estate, MIX, calendar, now, args.seed, technicians)
}

impl Reports for Estate {
    fn category(&mut self, random: &mut Random, kind: TicketKind) -> Category {
        match kind {
            TicketKind::VerbalDispatch if random.chance(0.5) => Category::Security,
            TicketKind::VerbalDispatch => Category::Environment,
            TicketKind::WorkOrder if random.chance(0.85) => Category::Repair,
            TicketKind::WorkOrder => Category::Rework,
            // The only one: nothing drawn.
            TicketKind::CoordinationTicket => Category::OwnerCommunication,
        }
    }

    fn intake(
        &mut self,
        random: &mut Random,
        kind: TicketKind,
        category: Category,
        area: Area,
    ) -> Intake {
        let offset = self.received * self.step_ms + random.between(0, self.step_ms - 1);
        self.received += 1;
        let received_at = self.from + chrono::Duration::milliseconds(offset);
        // The owner of a unit reports from it; anyone reports a public area.
        let unit = random.between(0, UNITS as i64 - 1) as u64;
        let building = unit / (ENTRANCES * FLOORS * FLATS_PER_FLOOR) + 1;
        let location = match area {
            Area::PrivateUnit => {
                let entrance = unit / (FLOORS * FLATS_PER_FLOOR) % ENTRANCES + 1;
                let floor = unit / FLATS_PER_FLOOR % FLOORS + 1;
                let flat = unit % FLATS_PER_FLOOR + 1;
                format!("{building}-{entrance}-{floor}{flat:02}")
            }
            Area::PublicArea => {
                let place = PUBLIC_PLACES[random.between(0, 4) as usize];
                format!("{building}号楼{place}")
            }
        };
        let description = match category {
            Category::Repair => "厨房水管漏水，业主要求尽快上门 kitchen pipe leaking",
            Category::Rework => "上次维修后仍漏水 still leaking after the last repair",
            Category::Security => "单元门禁失灵 entrance door does not lock",
            Category::Environment => "楼道垃圾未清理 rubbish left in the stairwell",
            _ => "业主对物业费有疑问，需要回访 owner asks about the fee",
        };
        Intake {
            estate: self.estate.clone(),
            kind,
            category,
            area,
            source: Source::Phone,
            reporter: Reporter {
                name: format!("业主 {}", unit + 1),
                phone: Some(phone_of(unit)),
            },
            location,
            description: description.to_owned(),
            received_at,
            follow_up_of: None,
            booking: None,
        }
    }

    /// R-A1: numbered in the month of the numbering.
    fn serial_month(&self, at: DateTime<Utc>) -> SerialMonth {
        SerialMonth::of_local_date(self.calendar.local_date(at))
    }
}

/// The owner's phone of a unit: 11 digits, different for every unit.
fn phone_of(unit: u64) -> String {
    format!("138{:08}", (unit * 7_919 + 12_345_678) % 100_000_000)
}

// ---- The cases -----------------------------------------------------------------

/// A request of the list and what the seeded cards say it should find.
struct Spec {
    name: String,
    query: Vec<(&'static str, String)>,
    filter: CardFilter,
    /// Follow `next_after` this many times first, and time the page there.
    deep: usize,
    targeted: bool,
}

fn text_filter(text: &str) -> Result<CardFilter, String> {
    CardFilter::default()
        .with_text(text)
        .map_err(|error| error.to_string())
}

/// A filter without text, as `set` makes it.
fn filter(set: impl FnOnce(&mut CardFilter)) -> CardFilter {
    let mut filter = CardFilter::default();
    set(&mut filter);
    filter
}

fn matching(cards: &[TicketCard], filter: &CardFilter) -> usize {
    cards.iter().filter(|card| filter.keeps(card)).count()
}

fn specs(args: &TicketListArgs, searches: &Searches) -> Result<Vec<Spec>, String> {
    let li = UserId::parse("li").expect("a valid user");
    let spec = |name: &str, query: Vec<(&'static str, String)>, filter: CardFilter| Spec {
        name: name.to_owned(),
        query,
        filter,
        deep: 0,
        targeted: true,
    };
    let q = |text: &str| vec![("q", text.to_owned())];
    Ok(vec![
        spec(
            "first page, no filter (newest)",
            vec![("order", "newest".to_owned())],
            CardFilter::default(),
        ),
        spec(
            "first page, status=open",
            vec![("status", "open".to_owned())],
            filter(|f| f.status = Some(StatusFilter::Open)),
        ),
        spec(
            "search: a serial number",
            q(&searches.serial),
            text_filter(&searches.serial)?,
        ),
        spec(
            "search: a unit prefix",
            q(&searches.unit_prefix),
            text_filter(&searches.unit_prefix)?,
        ),
        spec(
            "search: a phone number",
            q(&searches.phone),
            text_filter(&searches.phone)?,
        ),
        spec(
            "search: nothing matches",
            q(NOTHING_TEXT),
            text_filter(NOTHING_TEXT)?,
        ),
        spec(
            "search: nothing matches, but every card's bytes do",
            q(WORST_TEXT),
            text_filter(WORST_TEXT)?,
        ),
        spec(
            "technician=li",
            vec![("technician", "li".to_owned())],
            filter(|f| f.technician = Some(li.clone())),
        ),
        spec(
            "technician=li, status=open",
            vec![
                ("technician", "li".to_owned()),
                ("status", "open".to_owned()),
            ],
            filter(|f| {
                f.technician = Some(li.clone());
                f.status = Some(StatusFilter::Open);
            }),
        ),
        spec(
            "overdue=true",
            vec![("overdue", "true".to_owned())],
            filter(|f| f.overdue = true),
        ),
        Spec {
            name: format!(
                "page {} (after following next_after {} times)",
                args.deep_pages + 1,
                args.deep_pages
            ),
            query: Vec::new(),
            filter: CardFilter::default(),
            deep: args.deep_pages,
            targeted: false,
        },
    ])
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn login(&self, username: &str) -> Result<String, String> {
        let request = LoginRequest {
            username: username.to_owned(),
            password: server::demo::DEMO_PASSWORD.to_owned(),
            device_id: None,
        };
        let answer = self
            .http
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&request)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !answer.status().is_success() {
            return Err(format!("login as {username}: {}", answer.status()));
        }
        let session: LoginResponse = answer.json().await.map_err(|e| e.to_string())?;
        Ok(session.token)
    }

    /// POST `body` to `path` as `token`; the answer, or its status and body.
    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, String> {
        let answer = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !answer.status().is_success() {
            let status = answer.status();
            let body = answer.text().await.unwrap_or_default();
            return Err(format!("{status} {body}"));
        }
        answer.json().await.map_err(|e| e.to_string())
    }

    /// One request of the list: the whole body, and the time it took.
    async fn cards(
        &self,
        token: &str,
        query: &[(&str, String)],
    ) -> Result<(Vec<u8>, Duration), String> {
        let started = Instant::now();
        let answer = self
            .http
            .get(format!("{}/api/v1/ticket-cards", self.base))
            .bearer_auth(token)
            .query(query)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = answer.status();
        let body = answer.bytes().await.map_err(|e| e.to_string())?;
        let elapsed = started.elapsed();
        if !status.is_success() {
            return Err(format!(
                "ticket-cards?{}: {status} {}",
                query_string(query),
                String::from_utf8_lossy(&body)
            ));
        }
        Ok((body.to_vec(), elapsed))
    }
}

fn query_string(query: &[(&str, String)]) -> String {
    query
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn measure(
    args: &TicketListArgs,
    seeded: &Seeded,
    server: &ServerProcess,
    runtime: &tokio::runtime::Runtime,
) -> Result<Vec<Case>, String> {
    let client = Client {
        http: reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?,
        base: format!("http://{}", server.address),
    };
    let (kefu, live) = runtime.block_on(async {
        let kefu = client.login("kefu").await?;
        let diaodu = client.login("diaodu").await?;
        let live = record_over_http(&client, &kefu, &diaodu).await?;
        Ok::<_, String>((kefu, live))
    })?;
    eprintln!(
        "recorded and dispatched {} over HTTP; checking and timing the cases …",
        live.id
    );
    let seeded_ids: HashSet<&TicketId> = seeded.cards.iter().map(|card| &card.ticket_id).collect();
    let quiet_wait = Duration::from_secs(args.quiet_wait_seconds);
    let mut cases = Vec::new();
    for spec in specs(args, &seeded.searches)? {
        let mut query = spec.query.clone();
        query.push(("limit", args.limit.to_string()));
        let (first, first_ms) = runtime.block_on(async {
            if spec.deep > 0 {
                let cursor = follow(&client, &kefu, &query, spec.deep).await?;
                query.push(("after", cursor));
            }
            client.cards(&kefu, &query).await
        })?;
        let page: TicketCardPage = serde_json::from_slice(&first)
            .map_err(|e| format!("{}: not a page of cards: {e}", spec.name))?;
        let matching = matching(&seeded.cards, &spec.filter);
        check(&spec, &page, seeded, &seeded_ids, matching, args.limit)?;
        if spec.name.starts_with("first page, no filter") && page.cards[0].ticket_id != live.id {
            return Err(format!(
                "the newest card is {}, not {} recorded over HTTP just now",
                page.cards[0].ticket_id, live.id
            ));
        }

        let mut samples = Vec::with_capacity(args.runs);
        let busy_cores_before = wait_for_quiet(quiet_wait);
        runtime.block_on(async {
            for _ in 0..args.warmups {
                client.cards(&kefu, &query).await?;
            }
            Ok::<_, String>(())
        })?;
        let cpu_after_warmups = server.usage()?.cpu_seconds;
        runtime.block_on(async {
            for _ in 0..args.runs {
                samples.push(client.cards(&kefu, &query).await?.1);
            }
            Ok::<_, String>(())
        })?;
        let cpu_after = server.usage()?.cpu_seconds;
        let case = Case {
            name: spec.name.clone(),
            query: query_string(&query),
            matching,
            cards: page.cards.len(),
            answer_bytes: first.len(),
            first_ms: milliseconds(first_ms),
            latency: Percentiles::of(&samples),
            server_cpu_ms: (cpu_after - cpu_after_warmups) * 1000.0 / args.runs as f64,
            busy_cores_before,
            targeted: spec.targeted,
        };
        eprintln!(
            "  {}: {} cards of {} matching; {}",
            case.name, case.cards, case.matching, case.latency
        );
        cases.push(case);
    }
    // The live ticket is found by its serial number too.
    if let Some(serial) = &live.serial_number {
        let query = vec![("q", serial.to_string())];
        let (body, _) = runtime.block_on(client.cards(&kefu, &query))?;
        let page: TicketCardPage = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        if !page.cards.iter().any(|card| card.ticket_id == live.id) {
            return Err(format!("a search for {serial} did not find {}", live.id));
        }
    }
    Ok(cases)
}

/// Follow `next_after` `pages` times; the cursor reached.
async fn follow(
    client: &Client,
    token: &str,
    query: &[(&'static str, String)],
    pages: usize,
) -> Result<String, String> {
    let mut cursor: Option<String> = None;
    for page_number in 0..pages {
        let mut query = query.to_vec();
        if let Some(cursor) = &cursor {
            query.push(("after", cursor.clone()));
        }
        let (body, _) = client.cards(token, &query).await?;
        let page: TicketCardPage = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        cursor = Some(
            page.next_after
                .ok_or_else(|| format!("the list ended after {} pages", page_number + 1))?,
        );
    }
    Ok(cursor.unwrap_or_default())
}

/// The answer against the seeded cards: every card passes the filter, the
/// page is full when enough match, and (but for a deep page and the
/// filters that time changes) the seeded cards in it are the first the
/// filter keeps in the list's order.
fn check(
    spec: &Spec,
    page: &TicketCardPage,
    seeded: &Seeded,
    seeded_ids: &HashSet<&TicketId>,
    matching: usize,
    limit: usize,
) -> Result<(), String> {
    let fail = |why: String| Err(format!("{}: {why}", spec.name));
    if let Some(card) = page.cards.iter().find(|card| !spec.filter.keeps(card)) {
        return fail(format!("{} is not kept by the filter", card.ticket_id));
    }
    if page.cards.len() > limit {
        return fail(format!("{} cards for a limit of {limit}", page.cards.len()));
    }
    let answered: Vec<&TicketId> = page
        .cards
        .iter()
        .map(|card| &card.ticket_id)
        .filter(|id| seeded_ids.contains(id))
        .collect();
    let newer = page.cards.len() - answered.len();
    if matching >= limit + spec.deep * limit && page.cards.len() != limit {
        return fail(format!(
            "{} cards where {matching} match and the limit is {limit}",
            page.cards.len()
        ));
    }
    if spec.deep > 0 {
        return Ok(());
    }
    // The filters that depend on time (status, overdue) may see a ticket
    // changed by the scheduler since seeding: only their fullness counts.
    if spec.filter.status.is_some() || spec.filter.overdue {
        return Ok(());
    }
    let expected: Vec<&TicketId> = seeded
        .cards
        .iter()
        .filter(|card| spec.filter.keeps(card))
        .map(|card| &card.ticket_id)
        .take(limit - newer)
        .collect();
    if answered != expected {
        return fail(format!(
            "answered {} seeded cards, expected {} ({} match)",
            answered.len(),
            expected.len(),
            matching
        ));
    }
    Ok(())
}

/// Record a repair over HTTP as `kefu` and dispatch it to li as `diaodu`,
/// as the console does.
async fn record_over_http(client: &Client, kefu: &str, diaodu: &str) -> Result<Ticket, String> {
    let intake = Intake {
        estate: EstateId::parse("E01").expect("a valid estate"),
        kind: TicketKind::WorkOrder,
        category: Category::Repair,
        area: Area::PrivateUnit,
        source: Source::Phone,
        reporter: Reporter {
            name: "业主 测试 Test".to_owned(),
            phone: Some("13900000001".to_owned()),
        },
        location: "31-1-101".to_owned(),
        description: "卫生间地漏堵塞 bathroom drain blocked".to_owned(),
        received_at: Utc::now(),
        follow_up_of: None,
        booking: None,
    };
    let ticket: Ticket = client
        .post(kefu, "/api/v1/tickets", &intake)
        .await
        .map_err(|error| format!("recording a ticket: {error}"))?;
    let request = OfficeActionRequest {
        expected_version: None,
        op: OfficeOp::Dispatch {
            technician: UserId::parse("li").expect("a valid user"),
        },
    };
    let path = format!("/api/v1/tickets/{}/actions", ticket.id);
    client
        .post(diaodu, &path, &request)
        .await
        .map_err(|error| format!("dispatching {}: {error}", ticket.id))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn print_summary(report: &TicketListReport) {
    println!("machine: {}", report.machine);
    println!(
        "estate E01: {} tickets over {} days, seeded in {:.1} s; {} open, {} of them overdue; by status {:?}; by technician {:?}",
        report.tickets,
        report.days,
        report.seed_seconds,
        report.open,
        report.overdue,
        report.by_status,
        report.per_technician
    );
    println!(
        "cards: {} bytes of JSON on average; store {:.0} MiB after seeding, {:.0} MiB at the end; server resident {:.0} MiB (peak {:.0} MiB)",
        report.mean_card_json_bytes,
        mib(report.store_bytes_after_seeding),
        mib(report.store_bytes_at_end),
        report.server_resident_mib,
        report.server_peak_resident_mib
    );
    println!(
        "GET /api/v1/ticket-cards as kefu, limit {}, {} warm-ups then {} timed requests one at a time:",
        report.limit, report.warmups, report.runs
    );
    for case in &report.cases {
        println!(
            "  {:<52} median {:>7.2} ms  p90 {:>7.2} ms  max {:>7.2} ms  (first {:.1} ms; {} cards, {} B; {} match; server CPU {:.1} ms a request)",
            case.name,
            case.latency.p50_ms,
            case.latency.p90_ms,
            case.latency.max_ms,
            case.first_ms,
            case.cards,
            case.answer_bytes,
            case.matching,
            case.server_cpu_ms
        );
        println!("  {:<52} ?{}", "", case.query);
    }
    println!(
        "target: every search and first page p90 ≤ {:.0} ms: {}",
        report.target_ms,
        if report.target_met { "met" } else { "MISSED" }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(tickets: usize) -> TicketListArgs {
        TicketListArgs {
            tickets,
            days: 30,
            runs: 1,
            warmups: 0,
            limit: 50,
            deep_pages: 20,
            seed: 1,
            server_bin: None,
            data_dir: None,
            keep: false,
            quiet_wait_seconds: 0,
            json: None,
        }
    }

    #[test]
    fn seeding_leaves_no_passed_deadline_unrecorded_and_numbers_what_the_writer_would() {
        let directory = tempfile::tempdir().unwrap();
        let data = directory.path().join("data");
        let seeded = seed(&data, &args(2_000)).unwrap();
        assert!(seeded.cards.len() >= 2_000);
        assert!(
            seeded
                .cards
                .windows(2)
                .all(|pair| pair[0].received_at >= pair[1].received_at),
            "newest first"
        );
        let store = Store::open(&data).unwrap();
        assert_eq!(
            store.counters().unwrap().tickets as usize,
            seeded.cards.len()
        );
        let calendar = server::demo::demo_calendar();
        // A deadline passing while the test runs is the scheduler's to record.
        let seeded_by = Utc::now() - chrono::Duration::minutes(1);
        for card in &seeded.cards {
            let ticket = store.ticket(&card.ticket_id).unwrap().unwrap();
            assert_eq!(TicketCard::of(&ticket), *card);
            assert_eq!(
                ticket.serial_number.is_some(),
                ticket.kind != TicketKind::VerbalDispatch
            );
            for deadline in ticket_deadlines(&ticket, &calendar) {
                if deadline.done_at.is_none() && deadline.due_at < seeded_by {
                    assert!(
                        sync_protocol::due::deadline_miss_recorded(
                            &ticket,
                            deadline.rule,
                            deadline.due_at
                        ),
                        "{} {:?}",
                        ticket.id,
                        deadline.rule
                    );
                }
            }
        }
        let found = |text: &str| matching(&seeded.cards, &text_filter(text).unwrap());
        assert_eq!(found(&seeded.searches.serial), 1);
        assert!(found(&seeded.searches.unit_prefix) >= 1);
        assert!(found(&seeded.searches.phone) >= 1);
        assert_eq!(found(NOTHING_TEXT), 0);
        assert_eq!(found(WORST_TEXT), 0);
        let every_card_holds_the_worst_text = seeded.cards.iter().all(|card| {
            let json = serde_json::to_vec(card).unwrap();
            json.windows(WORST_TEXT.len())
                .any(|window| window == WORST_TEXT.as_bytes())
        });
        assert!(every_card_holds_the_worst_text);
    }
}
