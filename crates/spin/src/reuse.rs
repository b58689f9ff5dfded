//! When a SQLite connection kept by an instance may serve its next request
//! (see `SpinSql::pooled`): only when no statement is running on it and no
//! transaction is open, as far as the statements run on it tell.

/// What the statements run on one connection leave behind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionState {
    in_transaction: bool,
    running: bool,
}

impl ConnectionState {
    /// Before running `sql`: a statement that may open a transaction counts
    /// as having opened it, whether or not it gets to finish.
    pub fn starting(&mut self, sql: &str) {
        self.running = true;
        if matches!(first_word(sql).as_str(), "BEGIN" | "SAVEPOINT") {
            self.in_transaction = true;
        }
    }

    /// After `sql` ran (`ok`: it succeeded): only a successful end of the
    /// transaction closes it (`ROLLBACK TO` a savepoint keeps it open).
    pub fn finished(&mut self, sql: &str, ok: bool) {
        self.running = false;
        let ends = match first_word(sql).as_str() {
            "COMMIT" | "END" => true,
            "ROLLBACK" => !sql.to_ascii_uppercase().contains(" TO "),
            _ => false,
        };
        if ok && ends {
            self.in_transaction = false;
        }
    }

    /// Whether the connection may be handed to another request.
    pub fn reusable(&self) -> bool {
        !self.in_transaction && !self.running
    }
}

/// The first word of a statement, upper-cased.
fn first_word(sql: &str) -> String {
    sql.trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(statements: &[(&str, bool)]) -> ConnectionState {
        let mut s = ConnectionState::default();
        for (sql, ok) in statements {
            s.starting(sql);
            s.finished(sql, *ok);
        }
        s
    }

    #[test]
    fn reads_and_finished_transactions_leave_it_reusable() {
        assert!(ConnectionState::default().reusable());
        assert!(after(&[("SELECT 1", true), ("select x from t", false)]).reusable());
        assert!(
            after(&[
                ("BEGIN IMMEDIATE", true),
                ("INSERT ...", true),
                ("COMMIT", true)
            ])
            .reusable()
        );
        assert!(after(&[("  begin", true), ("INSERT ...", false), ("rollback", true)]).reusable());
        assert!(after(&[("SAVEPOINT a", true), ("RELEASE a", true), ("END", true)]).reusable());
    }

    #[test]
    fn open_transactions_and_running_statements_do_not() {
        assert!(!after(&[("BEGIN", true), ("INSERT ...", true)]).reusable());
        // A failed BEGIN may or may not have opened one: not reused.
        assert!(!after(&[("BEGIN", false)]).reusable());
        assert!(!after(&[("BEGIN", true), ("COMMIT", false)]).reusable());
        assert!(!after(&[("BEGIN", true), ("ROLLBACK TO a", true)]).reusable());
        assert!(!after(&[("SAVEPOINT a", true)]).reusable());
        // Dropped while a statement ran (the request was cancelled).
        let mut s = ConnectionState::default();
        s.starting("SELECT 1");
        assert!(!s.reusable());
        let mut s = after(&[("BEGIN", true)]);
        s.starting("COMMIT");
        assert!(!s.reusable());
    }
}
