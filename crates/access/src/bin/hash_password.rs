//! Print an Argon2id hash for `admin_password_hash`.
//!
//! Reads the password from the first line of standard input (so it stays
//! out of shell history and `ps`), or from `RAGSPIN_PASSWORD`:
//!
//! ```sh
//! make hash-password            # prompts
//! printf '%s\n' "$PW" | cargo run -q -p ragspin-access --bin ragspin-hash-password
//! ```

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use ragspin_access::OsRandom;
use ragspin_access::password::{hash_password, validate_new_password};

fn main() -> ExitCode {
    let password = match std::env::var("RAGSPIN_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprint!("password (input is echoed): ");
                let _ = std::io::stderr().flush();
            }
            let mut line = String::new();
            if stdin.lock().read_line(&mut line).is_err() {
                eprintln!("could not read the password from standard input");
                return ExitCode::FAILURE;
            }
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    if let Err(e) = validate_new_password(&password) {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    match hash_password(&password, &OsRandom) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
