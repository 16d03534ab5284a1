//! The roles of SPEC.md and what each may do. Pure predicates: the server asks
//! them, so that one table decides every permission.

use serde::{Deserialize, Serialize};

use crate::ticket::{Category, TicketKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 客服中心前台 / 呼叫中心.
    CustomerServiceAgent,
    /// 客服专员.
    CustomerServiceSpecialist,
    /// 客服中心经理.
    CustomerServiceManager,
    /// 工程部调度.
    Dispatcher,
    /// 工程维修人员.
    Technician,
    /// 部门经理 / 班长.
    DepartmentManager,
    /// 环境经理.
    EnvironmentManager,
    /// 主管.
    Supervisor,
    /// 系统管理员: the property group's user administration. Manages the
    /// users of every estate and reads no ticket of any.
    Administrator,
}

/// Which tickets of its own estate a role reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TicketScope {
    /// Every ticket of the estate.
    WholeEstate,
    /// Only the tickets assigned to the user now.
    Assigned,
    /// None at all.
    Nothing,
}

impl Role {
    pub const ALL: [Role; 9] = [
        Role::CustomerServiceAgent,
        Role::CustomerServiceSpecialist,
        Role::CustomerServiceManager,
        Role::Dispatcher,
        Role::Technician,
        Role::DepartmentManager,
        Role::EnvironmentManager,
        Role::Supervisor,
        Role::Administrator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::CustomerServiceAgent => "customer_service_agent",
            Role::CustomerServiceSpecialist => "customer_service_specialist",
            Role::CustomerServiceManager => "customer_service_manager",
            Role::Dispatcher => "dispatcher",
            Role::Technician => "technician",
            Role::DepartmentManager => "department_manager",
            Role::EnvironmentManager => "environment_manager",
            Role::Supervisor => "supervisor",
            Role::Administrator => "administrator",
        }
    }

    pub fn parse(raw: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == raw)
    }

    /// R-I1/R-I2: customer service takes and records reports.
    pub fn may_take_reports(self) -> bool {
        matches!(
            self,
            Role::CustomerServiceAgent
                | Role::CustomerServiceSpecialist
                | Role::CustomerServiceManager
        )
    }

    /// R-D1: who assigns the people for a ticket of this kind and category.
    pub fn may_dispatch(self, kind: TicketKind, category: Category) -> bool {
        match (kind, category) {
            // R-K1: the agent who took the call radios the job out.
            (TicketKind::VerbalDispatch, _) => self == Role::CustomerServiceAgent,
            // R-D1: owner-communication coordination tickets go to a specialist,
            (_, Category::OwnerCommunication) => self == Role::CustomerServiceSpecialist,
            // environment work orders and coordination tickets to the
            // environment manager, who arranges cleaning and greening: private
            // gardens (私家花园养护) are greening, booked ones (R-S2) included,
            (TicketKind::CoordinationTicket, _)
            | (_, Category::Environment)
            | (TicketKind::WorkOrder, Category::PrivateGarden) => self == Role::EnvironmentManager,
            // gates and security to the agent (order maintenance takes them by radio),
            (_, Category::Security) => self == Role::CustomerServiceAgent,
            // and engineering work orders to the engineering dispatcher. Home
            // service (家政) has no dispatcher of its own in R-D1, so its work
            // orders, booked ones (R-S2) included, go through the engineering
            // dispatcher too.
            (
                TicketKind::WorkOrder,
                Category::Repair | Category::Rework | Category::HomeService,
            ) => self == Role::Dispatcher,
        }
    }

    /// R-D1, R-D3: whether the role dispatches any kind of ticket at all,
    /// and so has a dispatch queue and asks for suggestions.
    pub fn may_dispatch_any(self) -> bool {
        matches!(
            self,
            Role::Dispatcher
                | Role::EnvironmentManager
                | Role::CustomerServiceAgent
                | Role::CustomerServiceSpecialist
        )
    }

    /// R-P1: customer service books appointments with the owner; the
    /// dispatcher moves them when the plan changes. The same roles move a
    /// booked service when the owner asks (R-S2).
    pub fn may_set_appointments(self) -> bool {
        matches!(
            self,
            Role::CustomerServiceAgent | Role::CustomerServiceSpecialist | Role::Dispatcher
        )
    }

    /// R-C1 closes a work order by its dispatcher (the role that dispatches
    /// it), R-C3 a coordination ticket by the customer-service manager; a
    /// verbal dispatch is closed by the one who took the report (R-K1,
    /// checked by identity), so by any role that takes reports: a specialist
    /// takes them too (R-F3), and their verbal dispatches must not stay open.
    pub fn may_close(self, kind: TicketKind, category: Category) -> bool {
        match kind {
            TicketKind::VerbalDispatch => self.may_take_reports(),
            TicketKind::WorkOrder => self.may_dispatch(kind, category),
            TicketKind::CoordinationTicket => self == Role::CustomerServiceManager,
        }
    }

    /// R-C3: the department manager signs a completed coordination ticket off.
    pub fn may_sign_off(self) -> bool {
        self == Role::DepartmentManager
    }

    /// R-C2: the work order's dispatcher, or customer service, converts it.
    pub fn may_convert(self, category: Category) -> bool {
        self.may_dispatch(TicketKind::WorkOrder, category)
            || matches!(
                self,
                Role::CustomerServiceAgent | Role::CustomerServiceSpecialist
            )
    }

    /// R-F1/R-F2: customer service calls owners back.
    pub fn may_follow_up(self) -> bool {
        self.may_take_reports()
    }

    /// R-P3/R-P4/R-P5/R-D2: the tracking specialist and the department;
    /// and the customer-service manager, who talks to an escalated ticket's
    /// owner with the coordinator and records it (R-P5).
    pub fn may_track(self) -> bool {
        matches!(
            self,
            Role::CustomerServiceSpecialist
                | Role::CustomerServiceManager
                | Role::DepartmentManager
                | Role::EnvironmentManager
                | Role::Dispatcher
        )
    }

    /// R-C4: the daily unclosed list, for the front desk and its lead, the
    /// specialists' review of coordination tickets, and the people who watch.
    pub fn may_read_daily_unclosed(self) -> bool {
        matches!(
            self,
            Role::CustomerServiceAgent
                | Role::CustomerServiceSpecialist
                | Role::CustomerServiceManager
                | Role::DepartmentManager
                | Role::Supervisor
        )
    }

    /// R-A3: the monthly statistics, the customer-service manager's, and
    /// for the managers who answer for them.
    pub fn may_read_monthly_statistics(self) -> bool {
        matches!(
            self,
            Role::CustomerServiceManager | Role::DepartmentManager | Role::Supervisor
        )
    }

    pub fn may_cancel(self) -> bool {
        matches!(
            self,
            Role::CustomerServiceAgent | Role::CustomerServiceManager | Role::Dispatcher
        )
    }

    /// Office notes come from the office; technicians write notes from the field
    /// through sync, and supervisors watch.
    pub fn may_write_office_notes(self) -> bool {
        self.sees_whole_estate() && self != Role::Supervisor
    }

    /// The crew table and the live feed: SPEC.md gives watching the live
    /// progress and sync status of every technician to the supervisor.
    pub fn may_watch_crew(self) -> bool {
        self == Role::Supervisor
    }

    /// Reviewing a flagged device fact (late, or timed by an untrusted
    /// clock) is the supervisor's call.
    pub fn may_review_facts(self) -> bool {
        self == Role::Supervisor
    }

    /// Technicians see only the tickets assigned to them, administrators
    /// none; every other role sees its estate's tickets.
    pub fn ticket_scope(self) -> TicketScope {
        match self {
            Role::Technician => TicketScope::Assigned,
            Role::Administrator => TicketScope::Nothing,
            _ => TicketScope::WholeEstate,
        }
    }

    /// The office: every role that reads its whole estate's tickets.
    pub fn sees_whole_estate(self) -> bool {
        self.ticket_scope() == TicketScope::WholeEstate
    }

    /// Adding users, changing their role or estate, disabling them,
    /// resetting passwords and ending sessions.
    pub fn may_administer_users(self) -> bool {
        self == Role::Administrator
    }

    /// Only technicians record field facts through sync.
    pub fn works_in_the_field(self) -> bool {
        self == Role::Technician
    }
}

/// The office actions on a ticket (`OfficeOp`), by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfficeAction {
    Dispatch,
    Reassign,
    SetAppointment,
    RescheduleBooking,
    Cancel,
    AddNote,
    Close,
    SignOff,
    Convert,
    RecordFollowUp,
    Track,
}

impl OfficeAction {
    pub const ALL: [OfficeAction; 11] = [
        OfficeAction::Dispatch,
        OfficeAction::Reassign,
        OfficeAction::SetAppointment,
        OfficeAction::RescheduleBooking,
        OfficeAction::Cancel,
        OfficeAction::AddNote,
        OfficeAction::Close,
        OfficeAction::SignOff,
        OfficeAction::Convert,
        OfficeAction::RecordFollowUp,
        OfficeAction::Track,
    ];

    /// What a refusal says the role may not do.
    pub fn refused(self) -> &'static str {
        match self {
            OfficeAction::Dispatch | OfficeAction::Reassign => {
                "dispatch this kind of ticket (R-D1)"
            }
            OfficeAction::SetAppointment => "book appointments",
            OfficeAction::RescheduleBooking => "move booked services (R-S2)",
            OfficeAction::Cancel => "cancel tickets",
            OfficeAction::AddNote => "write office notes",
            OfficeAction::Close => "close this kind of ticket (R-C1, R-C3, R-K1)",
            OfficeAction::SignOff => "sign coordination tickets off (R-C3)",
            OfficeAction::Convert => "convert work orders (R-C2)",
            OfficeAction::RecordFollowUp => "record follow-ups (R-F2)",
            OfficeAction::Track => "track coordination tickets (R-P3, R-P4)",
        }
    }
}

impl Role {
    /// Whether the role may take `action` on a ticket of this kind and
    /// category: the one table the server checks and the console shows.
    pub fn may_take(self, action: OfficeAction, kind: TicketKind, category: Category) -> bool {
        match action {
            OfficeAction::Dispatch | OfficeAction::Reassign => self.may_dispatch(kind, category),
            OfficeAction::SetAppointment | OfficeAction::RescheduleBooking => {
                self.may_set_appointments()
            }
            OfficeAction::Cancel => self.may_cancel(),
            OfficeAction::AddNote => self.may_write_office_notes(),
            OfficeAction::Close => self.may_close(kind, category),
            OfficeAction::SignOff => self.may_sign_off(),
            OfficeAction::Convert => self.may_convert(category),
            OfficeAction::RecordFollowUp => self.may_follow_up(),
            OfficeAction::Track => self.may_track(),
        }
    }
}

/// What a role may do, for pages that show only what the server would
/// allow (`GET /api/v1/permissions`). The server still checks every request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    pub role: Role,
    /// Reads every ticket of the estate (false: only their own, or none).
    pub reads_estate: bool,
    pub takes_reports: bool,
    pub dispatches: bool,
    pub reads_daily_unclosed: bool,
    pub reads_monthly_statistics: bool,
    pub administers_users: bool,
    pub watches_crew: bool,
    /// The office actions the role may take, by kind and category of ticket.
    pub actions: Vec<ActionGrant>,
}

/// The office actions the caller may take on one ticket now
/// (`GET /api/v1/tickets/{id}/actions`, `office::offered_actions`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferedActions {
    pub ticket_id: crate::ids::TicketId,
    /// The version the answer judged: pass it as `expected_version`.
    pub version: crate::ids::Version,
    pub actions: Vec<OfficeAction>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionGrant {
    pub kind: TicketKind,
    pub category: Category,
    pub actions: Vec<OfficeAction>,
}

impl Permissions {
    pub fn of(role: Role) -> Permissions {
        let office = role.sees_whole_estate();
        let actions = if office {
            TicketKind::ALL
                .into_iter()
                .flat_map(|kind| {
                    Category::ALL
                        .into_iter()
                        .map(move |category| (kind, category))
                })
                .map(|(kind, category)| ActionGrant {
                    kind,
                    category,
                    actions: OfficeAction::ALL
                        .into_iter()
                        .filter(|action| role.may_take(*action, kind, category))
                        .collect(),
                })
                .filter(|grant| !grant.actions.is_empty())
                .collect()
        } else {
            Vec::new()
        };
        Permissions {
            role,
            reads_estate: office,
            takes_reports: role.may_take_reports(),
            dispatches: role.may_dispatch_any(),
            reads_daily_unclosed: role.may_read_daily_unclosed(),
            reads_monthly_statistics: role.may_read_monthly_statistics(),
            administers_users: role.may_administer_users(),
            watches_crew: role.may_watch_crew(),
            actions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_round_trip() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{}\"", role.as_str()));
        }
        assert_eq!(Role::parse("admin"), None);
    }

    #[test]
    fn an_administrator_manages_users_and_reads_no_ticket() {
        let administrator = Role::Administrator;
        assert!(administrator.may_administer_users());
        assert_eq!(administrator.ticket_scope(), TicketScope::Nothing);
        assert!(!administrator.sees_whole_estate());
        assert!(!administrator.works_in_the_field());
        assert!(!administrator.may_take_reports());
        assert!(!administrator.may_dispatch_any());
        assert!(!administrator.may_write_office_notes());
        assert!(!administrator.may_read_daily_unclosed());
        assert!(!administrator.may_read_monthly_statistics());
        assert!(!administrator.may_watch_crew());
        let others: Vec<Role> = Role::ALL
            .into_iter()
            .filter(|role| role.may_administer_users())
            .collect();
        assert_eq!(others, [Role::Administrator]);
    }

    #[test]
    fn r_d1_engineering_work_goes_through_the_dispatcher_only() {
        let allowed: Vec<Role> = Role::ALL
            .into_iter()
            .filter(|role| role.may_dispatch(TicketKind::WorkOrder, Category::Repair))
            .collect();
        assert_eq!(allowed, vec![Role::Dispatcher]);
    }

    #[test]
    fn r_d1_environment_and_communication_go_to_their_owners() {
        assert!(
            Role::EnvironmentManager.may_dispatch(TicketKind::WorkOrder, Category::Environment)
        );
        assert!(!Role::Dispatcher.may_dispatch(TicketKind::WorkOrder, Category::Environment));
        assert!(
            Role::CustomerServiceSpecialist
                .may_dispatch(TicketKind::CoordinationTicket, Category::OwnerCommunication)
        );
        assert!(
            Role::EnvironmentManager.may_dispatch(TicketKind::CoordinationTicket, Category::Repair)
        );
        assert!(!Role::Dispatcher.may_dispatch(TicketKind::CoordinationTicket, Category::Repair));
    }

    #[test]
    fn r_d1_r_s2_booked_home_service_goes_through_the_dispatcher_and_garden_care_to_the_environment_manager()
     {
        let dispatchers = |category| -> Vec<Role> {
            Role::ALL
                .into_iter()
                .filter(|role| role.may_dispatch(TicketKind::WorkOrder, category))
                .collect()
        };
        assert_eq!(dispatchers(Category::HomeService), [Role::Dispatcher]);
        assert_eq!(
            dispatchers(Category::PrivateGarden),
            [Role::EnvironmentManager],
            "private-garden care is greening work"
        );
        assert!(
            Role::CustomerServiceAgent
                .may_dispatch(TicketKind::VerbalDispatch, Category::HomeService),
            "a same-day home-service request goes out by radio (R-S2, R-K1)"
        );
    }

    #[test]
    fn r_d3_the_roles_with_a_dispatch_queue_are_those_that_dispatch_something() {
        let kinds = [
            TicketKind::VerbalDispatch,
            TicketKind::WorkOrder,
            TicketKind::CoordinationTicket,
        ];
        let categories = [
            Category::Repair,
            Category::Rework,
            Category::Environment,
            Category::Security,
            Category::OwnerCommunication,
            Category::HomeService,
            Category::PrivateGarden,
        ];
        for role in Role::ALL {
            let dispatches_something = kinds.iter().any(|kind| {
                categories
                    .iter()
                    .any(|category| role.may_dispatch(*kind, *category))
            });
            assert_eq!(role.may_dispatch_any(), dispatches_something, "{role:?}");
        }
    }

    #[test]
    fn r_c1_r_c3_r_k1_each_kind_is_closed_by_its_own_role() {
        let closers = |kind, category| -> Vec<Role> {
            Role::ALL
                .into_iter()
                .filter(|role| role.may_close(kind, category))
                .collect()
        };
        assert_eq!(
            closers(TicketKind::WorkOrder, Category::Repair),
            vec![Role::Dispatcher]
        );
        assert_eq!(
            closers(TicketKind::CoordinationTicket, Category::Repair),
            vec![Role::CustomerServiceManager]
        );
        assert_eq!(
            closers(TicketKind::VerbalDispatch, Category::Security),
            vec![
                Role::CustomerServiceAgent,
                Role::CustomerServiceSpecialist,
                Role::CustomerServiceManager
            ]
        );
        assert!(Role::DepartmentManager.may_sign_off());
        assert!(!Role::CustomerServiceManager.may_sign_off());
    }

    #[test]
    fn technicians_do_no_office_work() {
        let technician = Role::Technician;
        assert!(!technician.may_take_reports());
        assert!(!technician.may_set_appointments());
        assert!(!technician.may_cancel());
        assert!(!technician.may_write_office_notes());
        assert!(!technician.sees_whole_estate());
        assert!(!technician.may_sign_off());
        assert!(!technician.may_convert(Category::Repair));
        assert!(!technician.may_follow_up());
        assert!(!technician.may_track());
        assert!(!technician.may_read_daily_unclosed());
        assert!(!technician.may_read_monthly_statistics());
        assert!(!technician.may_watch_crew());
        assert!(!technician.may_review_facts());
        for kind in [
            TicketKind::VerbalDispatch,
            TicketKind::WorkOrder,
            TicketKind::CoordinationTicket,
        ] {
            assert!(!technician.may_dispatch(kind, Category::Repair));
        }
    }
}
