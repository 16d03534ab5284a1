//! The demo estate: users of every role, a morning's tickets, created
//! through the same writer as real traffic, and its working calendar.

use chrono::{Duration, NaiveDate, Utc};
use sync_protocol::{
    Area, Category, EstateId, Intake, OfficeActionRequest, OfficeOp, Reporter, Role, Source,
    TicketKind, UserId, WorkingCalendar,
};

use crate::store::Store;
use crate::users::{UserError, new_user};
use crate::writer::{Command, Reply, WriteError, Writer};

pub const DEMO_ESTATE: &str = "E01";
pub const DEMO_PASSWORD: &str = "demo-password";

/// China's 2026 public holidays (放假), first and last day of each.
const HOLIDAYS_2026: &[(&str, &str)] = &[
    ("2026-01-01", "2026-01-03"), // 元旦 New Year
    ("2026-02-15", "2026-02-23"), // 春节 Spring Festival
    ("2026-04-04", "2026-04-06"), // 清明节 Qingming
    ("2026-05-01", "2026-05-05"), // 劳动节 Labour Day
    ("2026-06-19", "2026-06-21"), // 端午节 Dragon Boat
    ("2026-09-25", "2026-09-27"), // 中秋节 Mid-Autumn
    ("2026-10-01", "2026-10-07"), // 国庆节 National Day
];
/// The weekend days worked in exchange in 2026 (调休上班).
const EXTRA_WORKING_DAYS_2026: &[&str] = &[
    "2026-01-04",
    "2026-02-14",
    "2026-02-28",
    "2026-05-09",
    "2026-09-20",
    "2026-10-10",
];

/// The demo estate's calendar: Asia/Shanghai, 08:30-17:30, Monday to
/// Friday, with the 2026 holidays and 调休 days as the State Council
/// published them. A calendar configured for the demo estate replaces it.
pub fn demo_calendar() -> WorkingCalendar {
    let date = |raw: &str| NaiveDate::parse_from_str(raw, "%Y-%m-%d").expect("a valid date");
    let mut config = sync_protocol::CalendarConfig::from(WorkingCalendar::asia_shanghai());
    for (first, last) in HOLIDAYS_2026 {
        let last = date(last);
        config
            .public_holidays
            .extend(date(first).iter_days().take_while(|day| *day <= last));
    }
    config.extra_working_days = EXTRA_WORKING_DAYS_2026
        .iter()
        .map(|raw| date(raw))
        .collect();
    WorkingCalendar::new(config).expect("the demo calendar is valid")
}

/// (login, role, display name)
pub const DEMO_USERS: &[(&str, Role, &str)] = &[
    ("kefu", Role::CustomerServiceAgent, "客服 陈静 Chen Jing"),
    (
        "zhuanyuan",
        Role::CustomerServiceSpecialist,
        "客服专员 刘洋 Liu Yang",
    ),
    (
        "kefu-jingli",
        Role::CustomerServiceManager,
        "客服经理 赵敏 Zhao Min",
    ),
    ("diaodu", Role::Dispatcher, "工程调度 孙强 Sun Qiang"),
    ("li", Role::Technician, "维修 李师傅 Li"),
    ("zhang", Role::Technician, "维修 张师傅 Zhang"),
    ("wang", Role::Technician, "维修 王师傅 Wang"),
    (
        "banzhang",
        Role::DepartmentManager,
        "工程班长 周刚 Zhou Gang",
    ),
    (
        "huanjing",
        Role::EnvironmentManager,
        "环境经理 吴芳 Wu Fang",
    ),
    ("zhuguan", Role::Supervisor, "主管 郑伟 Zheng Wei"),
    ("guanli", Role::Administrator, "系统管理员 钱丽 Qian Li"),
];

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Seed the demo estate once; a store that has the demo users is left alone.
/// Returns whether it seeded.
pub async fn seed(store: &Store, writer: &Writer) -> Result<bool, DemoError> {
    let estate = EstateId::parse(DEMO_ESTATE).expect("valid estate");
    let first = UserId::parse(DEMO_USERS[0].0).expect("valid user");
    if store.user(&first)?.is_some() {
        return Ok(false);
    }
    for (login, role, name) in DEMO_USERS {
        let id = UserId::parse(login).expect("valid demo login");
        let user = new_user(id, *role, estate.clone(), name, DEMO_PASSWORD)?;
        writer.submit(Command::PutUser { user }).await?;
    }

    let agent = UserId::parse("kefu").expect("valid");
    let dispatcher = UserId::parse("diaodu").expect("valid");
    let now = Utc::now();
    let reports = [
        (
            "3-1-502",
            "厨房水管漏水 Kitchen pipe leaking",
            Area::PrivateUnit,
            Some("li"),
        ),
        (
            "5-2-1101",
            "卫生间灯不亮 Bathroom light out",
            Area::PrivateUnit,
            Some("li"),
        ),
        (
            "B2 水泵房",
            "2号水泵异响 Pump 2 noisy",
            Area::PublicArea,
            Some("zhang"),
        ),
        (
            "7-1-302",
            "入户门锁损坏 Front door lock broken",
            Area::PrivateUnit,
            Some("wang"),
        ),
        (
            "2号楼大堂",
            "大堂感应门不关 Lobby door stays open",
            Area::PublicArea,
            None,
        ),
    ];
    for (location, description, area, technician) in reports {
        let intake = Intake {
            estate: estate.clone(),
            kind: TicketKind::WorkOrder,
            category: Category::Repair,
            area,
            source: Source::Phone,
            reporter: Reporter {
                name: "业主 Owner".to_owned(),
                phone: Some("138 0000 0000".to_owned()),
            },
            location: location.to_owned(),
            description: description.to_owned(),
            received_at: now - Duration::minutes(5),
            follow_up_of: None,
            booking: None,
        };
        let command = Command::CreateTicket {
            by: agent.clone(),
            intake,
            named: None,
        };
        let Reply::Ticket(ticket) = writer.submit(command).await? else {
            continue;
        };
        if let Some(technician) = technician {
            let request = OfficeActionRequest {
                expected_version: None,
                op: OfficeOp::Dispatch {
                    technician: UserId::parse(technician).expect("valid"),
                },
            };
            let command = Command::Office {
                by: dispatcher.clone(),
                ticket_id: ticket.id.clone(),
                request,
                named: None,
            };
            writer.submit(command).await?;
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_calendar_has_the_national_day_week_off_and_works_the_saturday_after() {
        let calendar = demo_calendar();
        let date = |month, day| NaiveDate::from_ymd_opt(2026, month, day).unwrap();
        assert!(!calendar.is_working_day(date(10, 1)), "a Thursday holiday");
        assert!(!calendar.is_working_day(date(10, 7)), "a Wednesday holiday");
        assert!(calendar.is_working_day(date(10, 8)));
        assert!(
            calendar.is_working_day(date(10, 10)),
            "a Saturday worked (调休)"
        );
        assert!(calendar.is_working_day(date(11, 27)), "an ordinary Friday");
        assert_eq!(calendar.time_zone().name(), "Asia/Shanghai");
    }
}
