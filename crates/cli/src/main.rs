//! `eph`: Ephemera from a terminal. Every command takes a room as people share it, its link,
//! the `#k=` fragment of an encrypted room included, and encrypts and decrypts there as the
//! page does (crates/seal); the server never sees the key.

mod chat;
mod room;

use clap::{Args, Parser, Subcommand};
use protocol::rest::{CreateRoomRequest, CreateRoomResponse, RoomDetails};
use room::{Failure, Room};
use serde_json::Value;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

const EXAMPLES: &str = "\
Examples:
  eph create --owner alice --name Standup --token-file alice.token
  eph say 'http://localhost:8080/r/V1StGXR8_Z5jdHi6B-myT#k=...' --token-file alice.token 'Deploying now'
  echo 'from a pipe' | eph say \"$LINK\" --token-file alice.token
  eph tail \"$LINK\" --token-file alice.token | jq .
  eph chat \"$LINK\" --name bob
  eph destroy \"$LINK\" --token-file alice.token

Exit codes: 0 done; 1 refused by the server or unreachable (the reason on stderr);
2 bad usage; 3 the room does not exist (or ended).";

/// Ephemera's rooms from a terminal: create one, post and follow as its owner, chat, end it.
#[derive(Parser, Debug)]
#[command(name = "eph", version, about, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a room; prints its link (with the key, for an encrypted room) and the owner token.
    Create(CreateArgs),
    /// Show a room's details.
    Show {
        /// The room's link.
        link: String,
        /// The room's password (a password room).
        #[arg(long, env = "EPHEMERA_PASSWORD")]
        password: Option<String>,
        #[command(flatten)]
        token: TokenArgs,
        /// The server's JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Post a message as the room's owner (the text from the arguments, or else stdin).
    Say {
        link: String,
        /// The message; read from stdin when absent.
        text: Vec<String>,
        #[command(flatten)]
        token: TokenArgs,
        /// Sent with the message: a retry with the same id is not posted twice.
        #[arg(long)]
        client_id: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Follow a room: one JSON line per event and per message, resuming over reconnects.
    Tail {
        link: String,
        /// The owner token, or a member's resume token.
        #[command(flatten)]
        token: TokenArgs,
    },
    /// Chat in a room interactively: the conversation, who is online and typing, the countdown.
    Chat {
        link: String,
        /// Your name in the room (not needed with the owner token).
        #[arg(long)]
        name: Option<String>,
        #[arg(long, env = "EPHEMERA_PASSWORD")]
        password: Option<String>,
        /// Join as the owner with this token.
        #[command(flatten)]
        token: TokenArgs,
    },
    /// Destroy a room now: everyone is disconnected and every message deleted.
    Destroy {
        link: String,
        #[command(flatten)]
        token: TokenArgs,
    },
}

#[derive(Args, Debug)]
struct CreateArgs {
    /// The server's base URL.
    #[arg(long, env = "EPHEMERA_URL", default_value = "http://localhost:8080")]
    url: String,
    /// Your name: the owner's.
    #[arg(long)]
    owner: String,
    /// The room's name (encrypted in an encrypted room).
    #[arg(long)]
    name: Option<String>,
    #[arg(long, env = "EPHEMERA_PASSWORD")]
    password: Option<String>,
    /// Lifetime in seconds.
    #[arg(long)]
    expiry_seconds: Option<u64>,
    #[arg(long)]
    max_users: Option<u32>,
    /// Keep the room when its owner goes offline (default: it ends with its owner).
    #[arg(long)]
    keep_when_owner_leaves: bool,
    /// How long the room waits for its owner once its connection is gone (seconds).
    #[arg(long)]
    owner_grace_seconds: Option<u64>,
    /// Let members destroy the room too.
    #[arg(long)]
    members_can_destroy: bool,
    /// An open room: messages readable by the server (default: end-to-end encrypted).
    #[arg(long)]
    open: bool,
    /// Write the owner token to this file (mode 0600) instead of printing it.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// The server's JSON answer (with `link`) instead of the link and the token.
    #[arg(long)]
    json: bool,
}

/// The owner token (or a member's resume token) from the flag, a file or the environment.
#[derive(Args, Debug)]
struct TokenArgs {
    #[arg(long, env = "EPHEMERA_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[arg(long, conflicts_with = "token")]
    token_file: Option<PathBuf>,
}

impl TokenArgs {
    fn get(&self) -> Result<Option<String>, Failure> {
        match (&self.token, &self.token_file) {
            (Some(token), _) => Ok(Some(token.clone())),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map(|t| Some(t.trim().to_owned()))
                .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display()))),
            (None, None) => Ok(None),
        }
    }

    fn required(&self) -> Result<String, Failure> {
        self.get()?.ok_or_else(|| {
            Failure::usage("the owner token is needed: --token, --token-file or EPHEMERA_TOKEN")
        })
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("eph: {}", failure.message);
            ExitCode::from(failure.exit)
        }
    }
}

async fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Create(args) => create(args).await,
        Command::Show {
            link,
            password,
            token,
            json,
        } => {
            let room = Room::from_link(&link)?;
            let details = room
                .details(password.as_deref(), token.get()?.as_deref())
                .await?;
            if json {
                println!("{details}");
                return Ok(());
            }
            let details: RoomDetails = serde_json::from_value(details)
                .map_err(|e| Failure::usage(format!("an answer eph does not understand: {e}")))?;
            let online: Vec<&str> = details
                .online_users
                .iter()
                .map(|u| u.display_name.as_str())
                .collect();
            println!("{}", details.name.as_deref().unwrap_or("(no name)"));
            println!(
                "owner {}, {} of {} online: {}",
                details.owner_name,
                online.len(),
                details.max_users,
                online.join(", ")
            );
            let sealed = match details.sealing.encrypted {
                true => ", end-to-end encrypted",
                false => "",
            };
            println!(
                "ends {} (in {} s){sealed}",
                details.expires_at, details.expires_in
            );
            Ok(())
        }
        Command::Say {
            link,
            text,
            token,
            client_id,
            json,
        } => {
            let room = Room::from_link(&link)?;
            let text = match text.is_empty() {
                false => text.join(" "),
                true => {
                    let mut said = String::new();
                    std::io::stdin()
                        .read_to_string(&mut said)
                        .map_err(|e| Failure::usage(format!("cannot read stdin: {e}")))?;
                    said
                }
            };
            let client_id = client_id.unwrap_or_else(|| format!("eph-{}", nanoid::nanoid!(12)));
            let posted = room.say(&token.required()?, &text, &client_id).await?;
            match json {
                true => println!("{posted}"),
                false => println!("{}", posted["id"]),
            }
            Ok(())
        }
        Command::Tail { link, token } => {
            let room = Room::from_link(&link)?;
            let token = token
                .get()?
                .ok_or_else(|| Failure::usage("tail needs the owner token or a resume token"))?;
            room.tail(&token).await
        }
        Command::Chat {
            link,
            name,
            password,
            token,
        } => {
            let room = Room::from_link(&link)?;
            let token = token.get()?;
            if token.is_none() && name.is_none() {
                return Err(Failure::usage("chat needs --name (or the owner token)"));
            }
            chat::run(room, name, password, token).await
        }
        Command::Destroy { link, token } => {
            let room = Room::from_link(&link)?;
            room.destroy(&token.required()?).await
        }
    }
}

async fn create(args: CreateArgs) -> Result<(), Failure> {
    let key = (!args.open).then(seal::RoomKey::generate);
    let request = CreateRoomRequest {
        owner_name: args.owner,
        name: args.name.clone().filter(|_| key.is_none()),
        password: args.password,
        expiry_seconds: args.expiry_seconds,
        max_users: args.max_users,
        destroy_on_owner_offline: Some(!args.keep_when_owner_leaves),
        members_can_destroy: Some(args.members_can_destroy),
        owner_grace_seconds: args.owner_grace_seconds,
        encrypted: key.is_some().then_some(true),
        name_ciphertext: key
            .as_ref()
            .zip(args.name.as_deref())
            .map(|(key, name)| key.seal(name, seal::NAME_AAD)),
        key_check: key.as_ref().map(seal::RoomKey::key_check),
    };
    let body = serde_json::to_value(&request).map_err(|e| Failure::usage(e.to_string()))?;
    let mut answer = room::create(&args.url, &body).await?;
    let created: CreateRoomResponse = serde_json::from_value(answer.clone())
        .map_err(|e| Failure::usage(format!("an answer eph does not understand: {e}")))?;
    let link = match &key {
        Some(key) => key.link(&created.join_url),
        None => created.join_url,
    };
    if let Some(path) = &args.token_file {
        write_secret(path, &created.owner_token)?;
    }
    if args.json {
        answer["link"] = Value::String(link);
        if args.token_file.is_some() {
            answer["owner_token"] = Value::Null;
        }
        println!("{answer}");
    } else {
        println!("{link}");
        if args.token_file.is_none() {
            println!("{}", created.owner_token);
        }
    }
    Ok(())
}

/// Writes a secret readable by its owner only.
fn write_secret(path: &PathBuf, secret: &str) -> Result<(), Failure> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Failure::usage(format!("cannot write {}: {e}", path.display())))?;
    writeln!(file, "{secret}")
        .map_err(|e| Failure::usage(format!("cannot write {}: {e}", path.display())))
}
