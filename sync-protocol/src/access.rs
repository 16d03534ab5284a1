//! Who may read which ticket. Every read and write of the server asks this
//! one function, so that one estate never sees another's tickets and a
//! technician only the ones they hold.

use crate::ids::{EstateId, UserId};
use crate::roles::{Role, TicketScope};
use crate::ticket::Ticket;

/// What a user may know of one ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TicketAccess {
    /// Another estate's ticket, or a role that reads none: answered exactly
    /// as a ticket that does not exist, so that a refusal reveals nothing.
    Hidden,
    /// A ticket of the user's estate that this technician does not hold.
    NotTheirs,
    /// The user may read it.
    Readable,
}

/// The access of `user` (with `role`, working for `estate`, as their user
/// record says now) to `ticket`.
pub fn ticket_access(
    user: &UserId,
    role: Role,
    estate: &EstateId,
    ticket: &Ticket,
) -> TicketAccess {
    if &ticket.estate != estate {
        return TicketAccess::Hidden;
    }
    match role.ticket_scope() {
        TicketScope::WholeEstate => TicketAccess::Readable,
        TicketScope::Assigned if ticket.is_assigned_to(user) => TicketAccess::Readable,
        TicketScope::Assigned => TicketAccess::NotTheirs,
        TicketScope::Nothing => TicketAccess::Hidden,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::office::tests::dispatched_ticket;

    fn id(raw: &str) -> UserId {
        UserId::parse(raw).unwrap()
    }

    fn estate(raw: &str) -> EstateId {
        EstateId::parse(raw).unwrap()
    }

    #[test]
    fn another_estates_ticket_is_hidden_from_every_role() {
        let ticket = dispatched_ticket("li");
        let holder = id("li");
        for role in Role::ALL {
            assert_eq!(
                ticket_access(&holder, role, &estate("E99"), &ticket),
                TicketAccess::Hidden,
                "{role:?}"
            );
        }
    }

    #[test]
    fn in_its_estate_a_technician_reads_only_what_they_hold_and_an_administrator_nothing() {
        let ticket = dispatched_ticket("li");
        let holder = id("li");
        let home = ticket.estate.clone();
        let access = |user: &UserId, role| ticket_access(user, role, &home, &ticket);
        assert_eq!(access(&holder, Role::Technician), TicketAccess::Readable);
        assert_eq!(
            access(&id("other"), Role::Technician),
            TicketAccess::NotTheirs
        );
        assert_eq!(
            access(&id("diaodu"), Role::Dispatcher),
            TicketAccess::Readable
        );
        assert_eq!(
            access(&id("admin"), Role::Administrator),
            TicketAccess::Hidden
        );
    }
}
