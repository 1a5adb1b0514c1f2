//! What a member does, each action written once for both front doors: the WebSocket session
//! and the REST handlers call the same command, and each only maps a [`Refusal`] to its own
//! shape (an `error` frame or a close code; an HTTP status and `Retry-After`).

use crate::metrics::Metrics;
use protocol::frames::{ChatEvent, Content};
use protocol::text::{self, TextError};
use protocol::{CloseReason, ErrorCode, Millis, Role, limits};
use std::sync::Arc;
use store::{Actor, Amend, Member, NewMessage, Posted, Rate, RoomChange, RoomView, Store};

/// Why a command was refused: the contract's code and a sentence for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub detail: String,
    /// For a rate limit: when the client may try again.
    pub retry_after_ms: Option<Millis>,
}

impl Refusal {
    fn new(code: ErrorCode, detail: impl Into<String>) -> Refusal {
        Refusal {
            code,
            detail: detail.into(),
            retry_after_ms: None,
        }
    }
}

impl From<store::Error> for Refusal {
    fn from(err: store::Error) -> Refusal {
        if let store::Error::Unavailable(cause) = &err {
            tracing::warn!(%cause, "store unavailable");
        }
        let code = err.code();
        Refusal::new(code, code.sentence())
    }
}

/// A message as a client sent it: `text` or `ciphertext` (the command checks which the room
/// takes), its `client_id`, and the message it answers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Draft<'a> {
    pub text: Option<&'a str>,
    pub ciphertext: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub reply_to: Option<u64>,
}

/// A change to a kept message as a client asked for it.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// New content (`text`, or `ciphertext` in an encrypted room), by the author.
    Edit {
        text: Option<&'a str>,
        ciphertext: Option<&'a str>,
    },
    /// By the author, or by the owner.
    Delete,
    /// Toggles the member's emoji.
    React { emoji: &'a str },
}

/// The actions, with what they need to apply the contract's rules; cheap to clone.
#[derive(Clone)]
pub struct Commands {
    store: Store,
    metrics: Arc<Metrics>,
    max_message_chars: usize,
    rate: Rate,
    edit_window_ms: Millis,
}

impl Commands {
    pub fn new(store: Store, metrics: Arc<Metrics>, config: &crate::HubConfig) -> Self {
        Commands {
            store,
            metrics,
            max_message_chars: config.max_message_chars,
            rate: config.rate,
            edit_window_ms: config.edit_window.as_millis() as Millis,
        }
    }

    /// Posts a message as `author`: its content checked (text normalized; ciphertext, in an
    /// encrypted room, checked for shape and kept byte for byte), its `client_id` checked, then
    /// the member's and the room's rates, an id and the broadcast, all in the store. A
    /// `client_id` the author already used in a message history still holds is a retry: that
    /// message is the answer, and nothing is posted or counted.
    pub async fn post_message(
        &self,
        room_id: &str,
        author: &Member,
        encrypted: bool,
        draft: Draft<'_>,
    ) -> Result<Posted, Refusal> {
        let content = self.content(encrypted, draft.text, draft.ciphertext)?;
        let client_id = draft
            .client_id
            .map(|id| text::name(id, limits::CLIENT_ID_MAX_CHARS))
            .transpose()
            .map_err(|err| {
                let detail = err.describe("client_id", limits::CLIENT_ID_MAX_CHARS);
                Refusal::new(ErrorCode::InvalidFrame, detail)
            })?;
        let message = NewMessage {
            content,
            client_id,
            reply_to: draft.reply_to,
        };
        match self
            .store
            .append_message(room_id, author, message, self.rate)
            .await
        {
            Ok(posted) => {
                if posted.new {
                    self.metrics.messages_in.inc();
                }
                Ok(posted)
            }
            Err(store::Error::Refused(ErrorCode::InvalidFrame)) => Err(Refusal::new(
                ErrorCode::InvalidFrame,
                "reply_to must be the id of an earlier message of this room",
            )),
            Err(err) => Err(self.refused(err)),
        }
    }

    /// Edits, deletes or reacts to message `target` as `by`: the content checked as a
    /// message's, the emoji checked to be one emoji; then the store applies it against the
    /// member's and the room's message rates (the event takes the room's next id).
    pub async fn change_message(
        &self,
        room_id: &str,
        by: &Member,
        encrypted: bool,
        target: u64,
        change: Change<'_>,
    ) -> Result<ChatEvent, Refusal> {
        let amend = match change {
            Change::Edit { text, ciphertext } => {
                Amend::Edit(self.content(encrypted, text, ciphertext)?)
            }
            Change::Delete => Amend::Delete,
            Change::React { emoji } => match text::emoji(emoji) {
                Some(emoji) => Amend::React(emoji.to_owned()),
                None => {
                    return Err(Refusal::new(
                        ErrorCode::InvalidFrame,
                        "emoji must be exactly one emoji",
                    ));
                }
            },
        };
        let store = &self.store;
        let window = self.edit_window_ms;
        match store
            .amend_message(room_id, by, target, amend, self.rate, window)
            .await
        {
            Ok(event) => {
                self.metrics.messages_in.inc();
                Ok(event)
            }
            Err(store::Error::Refused(code @ ErrorCode::InvalidFrame)) => {
                let detail = match change {
                    Change::React { .. } => {
                        "target must be a message of this room, with fewer than 20 different reactions"
                    }
                    _ => "target must be the id of a message of this room",
                };
                Err(Refusal::new(code, detail))
            }
            Err(store::Error::Refused(code @ ErrorCode::NotFound)) => Err(Refusal::new(
                code,
                "that message is deleted, or no longer kept",
            )),
            Err(store::Error::Refused(code @ ErrorCode::Forbidden)) => {
                let detail = match change {
                    Change::Edit { .. } => {
                        "only its author may edit a message, within the edit window"
                    }
                    _ => "only its author or the room's owner may delete a message",
                };
                Err(Refusal::new(code, detail))
            }
            Err(err) => Err(self.refused(err)),
        }
    }

    /// A store refusal as the client hears it; a rate limit says when to try again.
    fn refused(&self, err: store::Error) -> Refusal {
        if let store::Error::Refused(ErrorCode::RateLimited) = err {
            self.metrics.rate_limited.inc();
            // The bucket refills one message per interval: the next is due within one.
            return Refusal {
                retry_after_ms: Some(1000 / Millis::from(self.rate.per_second.max(1))),
                ..Refusal::new(ErrorCode::RateLimited, "Too many messages")
            };
        }
        err.into()
    }

    /// What a message says, by the room's rule: `text` in an open room, `ciphertext` in an
    /// encrypted one, never the other, so no client leaks plaintext into an encrypted room by
    /// mistake.
    fn content(
        &self,
        encrypted: bool,
        text: Option<&str>,
        ciphertext: Option<&str>,
    ) -> Result<Content, Refusal> {
        let max = self.max_message_chars;
        let refused = |field: &'static str, max: usize| {
            move |err: TextError| {
                let code = match err {
                    TextError::Empty => ErrorCode::EmptyMessage,
                    TextError::TooLong => ErrorCode::MessageTooLong,
                    TextError::ControlCharacter
                    | TextError::Invisible
                    | TextError::NotCiphertext => ErrorCode::InvalidFrame,
                };
                Refusal::new(code, err.describe(field, max))
            }
        };
        let wrong = |detail: &str| Err(Refusal::new(ErrorCode::InvalidFrame, detail));
        match (encrypted, text, ciphertext) {
            (false, Some(said), None) => text::message(said, max)
                .map(Content::Text)
                .map_err(refused("text", max)),
            (true, None, Some(sealed)) => {
                let max = text::sealed_max(max);
                text::sealed(sealed, max)
                    .map(|sealed| Content::Ciphertext(sealed.to_owned()))
                    .map_err(refused("ciphertext", max))
            }
            (true, Some(_), _) => {
                wrong("This room is end-to-end encrypted: send ciphertext, never text")
            }
            (false, _, Some(_)) => wrong("This room is not encrypted: send text"),
            (true, None, None) => wrong("ciphertext is required"),
            (false, None, None) => wrong("text is required"),
        }
    }

    /// The member leaves at once: `user_offline` for the others (and the room's end if it was
    /// the owner of a room that ends with its owner).
    pub async fn leave(&self, room_id: &str, member_id: &str) -> Result<(), Refusal> {
        Ok(self.store.release_member(room_id, member_id).await?)
    }

    /// Ends the room for everyone (`room_closed`, reason `closed`): the owner may, a member
    /// only where `members_can_destroy`.
    pub async fn destroy(
        &self,
        room_id: &str,
        role: Role,
        members_can_destroy: bool,
    ) -> Result<(), Refusal> {
        if role != Role::Owner && !members_can_destroy {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                "only the owner may close this room",
            ));
        }
        if !self
            .store
            .destroy_room(room_id, CloseReason::Closed)
            .await?
        {
            return Err(ErrorCode::RoomNotFound.into());
        }
        Ok(())
    }

    /// An owner's change (remove a member, lock, move the end, hand over), refused with
    /// `forbidden` unless `by` is the owner now (the store checks it in the same step).
    pub async fn change_room(
        &self,
        room_id: &str,
        by: Actor<'_>,
        change: RoomChange,
    ) -> Result<RoomView, Refusal> {
        let kick = matches!(change, RoomChange::Kick { .. });
        match self.store.change_room(room_id, by, change).await {
            Ok(view) => Ok(view),
            Err(store::Error::Refused(ErrorCode::Forbidden)) => Err(Refusal::new(
                ErrorCode::Forbidden,
                if kick {
                    "only the owner may remove members, and not itself"
                } else {
                    "only the owner may change the room"
                },
            )),
            Err(store::Error::Refused(ErrorCode::NotFound)) => Err(Refusal::new(
                ErrorCode::NotFound,
                "no such member in this room",
            )),
            Err(err) => Err(err.into()),
        }
    }
}

impl From<ErrorCode> for Refusal {
    fn from(code: ErrorCode) -> Refusal {
        Refusal::new(code, code.sentence())
    }
}

/// A display name as typed: trimmed and checked; the refusal names the field.
pub fn display_name(raw: &str) -> Result<String, Refusal> {
    let max = limits::DISPLAY_NAME_MAX_CHARS;
    text::display_name(raw, max)
        .map_err(|err| Refusal::new(ErrorCode::InvalidRequest, err.describe("display_name", max)))
}
