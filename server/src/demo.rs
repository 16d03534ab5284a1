//! The demo estate: users of every role and a morning's tickets, created
//! through the same writer as real traffic.

use chrono::{Duration, Utc};
use sync_protocol::{
    Area, Category, EstateId, Intake, OfficeActionRequest, OfficeOp, Reporter, Role, Source,
    TicketKind, UserId,
};

use crate::store::Store;
use crate::users::{UserError, new_user};
use crate::writer::{Command, Reply, WriteError, Writer};

pub const DEMO_ESTATE: &str = "E01";
pub const DEMO_PASSWORD: &str = "demo-password";

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
        };
        let command = Command::CreateTicket {
            by: agent.clone(),
            intake,
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
            };
            writer.submit(command).await?;
        }
    }
    Ok(true)
}
