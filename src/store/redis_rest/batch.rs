//! Several calls in one HTTP request, without I/O: what the request carries
//! and which reply belongs to which call. Every transport that batches (the
//! native stores, the host's `fetch` in JavaScript) drives this, so a batch
//! means the same everywhere.
//!
//! Consecutive script calls travel as one call of the batch script
//! ([`BATCH`](crate::scripts::BATCH)): one command for the gateway and for
//! Redis, however many decisions it carries. Any other command (a reset's
//! DEL) goes between them, so Redis runs everything in call order. One
//! command is `POST /`; more are a `POST /pipeline`.
//!
//! Each call keeps its own [`Exchange`](super::exchange::Exchange): its
//! reply may be a result, NOSCRIPT (it is sent again with EVAL), an error of
//! its own, or the failure of the whole request, after which each call
//! decides by its own idempotence whether to try again.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

use super::call::ScriptCall;
use super::json::Json;
use super::protocol::{self, Reply};
use crate::scripts::BATCH;
use crate::StoreError;

/// How a batch's script calls travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    /// Consecutive script calls in one call of the batch script (the
    /// default). Its keys must share a Redis Cluster slot, so a store falls
    /// back to [`Pipeline`](Self::Pipeline) at the first CROSSSLOT.
    Script,
    /// Each script call its own EVALSHA in a `/pipeline`.
    Pipeline,
}

/// A store's grouping: its choice, until Redis first refuses a group.
/// (The JavaScript transport keeps its own flag.)
#[derive(Debug)]
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) struct GroupingState(AtomicBool);

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
impl GroupingState {
    pub(crate) fn new(grouping: Grouping) -> Self {
        Self(AtomicBool::new(grouping == Grouping::Script))
    }

    /// How the next batch's script calls travel.
    pub(crate) fn get(&self) -> Grouping {
        match self.0.load(Ordering::Relaxed) {
            true => Grouping::Script,
            false => Grouping::Pipeline,
        }
    }

    /// Each call's reply in `batch` from what its request got (see
    /// [`Batch::replies`]); after Redis refused to group, pipelines only.
    pub(crate) fn replies(
        &self,
        batch: &Batch,
        outcome: &Result<(u16, String), StoreError>,
    ) -> Vec<Reply> {
        let outcome = match outcome {
            Ok((status, text)) => Ok((*status, text.as_str())),
            Err(error) => Err(error.clone()),
        };
        let (replies, refused) = batch.replies(outcome);
        if refused {
            self.0.store(false, Ordering::Relaxed);
        }
        replies
    }
}

/// A request being assembled from calls, in call order.
pub(crate) struct Batch {
    grouping: Grouping,
    commands: Vec<Command>,
    /// Calls held.
    calls: usize,
}

enum Command {
    /// A body of its own.
    Plain(String),
    /// Script calls sharing one call of the batch script.
    Group(Group),
}

/// The batch script's keys and arguments, as JSON fragments.
struct Group {
    keys: String,
    args: String,
    count: usize,
    /// Whether the script's code must be sent (a member met NOSCRIPT).
    eval: bool,
    /// The first member's body alone, for a group of one.
    alone: String,
    /// The script's number and where in `args` the last arguments sent in
    /// full are: a call with the same (a limiter's calls at one time and
    /// cost) sends `0`.
    last: Option<(usize, Range<usize>)>,
}

impl Group {
    fn push(&mut self, call: &ScriptCall, eval: bool) {
        let number = call.batch_number();
        let same = self.last.as_ref().is_some_and(|(n, args)| {
            *n == number && self.args.get(args.clone()) == Some(call.args_json())
        });
        call.push_into_batch(&mut self.keys, &mut self.args, same);
        if !same {
            // The arguments go last.
            let end = self.args.len();
            self.last = Some((number, end - call.args_json().len()..end));
        }
        self.eval |= eval;
        self.count += 1;
    }
}

impl Batch {
    /// An empty batch whose script calls travel as `grouping` says.
    pub(crate) fn new(grouping: Grouping) -> Self {
        Self {
            grouping,
            commands: Vec::new(),
            calls: 0,
        }
    }

    /// Adds a script call, as it must be sent now (`eval`: with its code).
    pub(crate) fn add_script(&mut self, call: &ScriptCall, eval: bool) {
        if self.grouping == Grouping::Pipeline || !call.batchable() {
            return self.add_command(call.body(eval));
        }
        self.calls += 1;
        if let Some(Command::Group(group)) = self.commands.last_mut() {
            group.push(call, eval);
            return;
        }
        let mut group = Group {
            keys: String::new(),
            args: String::new(),
            count: 0,
            eval: false,
            alone: call.body(eval),
            last: None,
        };
        group.push(call, eval);
        self.commands.push(Command::Group(group));
    }

    /// Adds any other command, as its JSON body.
    pub(crate) fn add_command(&mut self, body: String) {
        self.calls += 1;
        self.commands.push(Command::Plain(body));
    }

    /// The path to POST to, after the store's URL.
    pub(crate) fn path(&self) -> &'static str {
        match self.commands.len() {
            1 => "",
            _ => "/pipeline",
        }
    }

    /// The JSON body to POST.
    pub(crate) fn body(&self) -> String {
        let mut bodies: Vec<String> = self.commands.iter().map(Command::body).collect();
        match bodies.len() {
            1 => bodies.pop().unwrap_or_default(),
            _ => protocol::pipeline_body(&bodies),
        }
    }

    /// Each call's reply, from what the transport got: an HTTP status and
    /// body, or no reply at all. The flag says whether Redis refused to
    /// group keys of different cluster slots: the calls are then to be sent
    /// again, as a pipeline.
    pub(crate) fn replies(&self, outcome: Result<(u16, &str), StoreError>) -> (Vec<Reply>, bool) {
        let count = self.commands.len();
        let per_command = match outcome {
            Err(error) => vec![Reply::Failed(error); count],
            Ok((status, body)) if count == 1 => vec![protocol::read_reply(status, body)],
            Ok((status, body)) => protocol::read_pipeline(status, body, count)
                .unwrap_or_else(|error| vec![Reply::Failed(error); count]),
        };
        // Calls were added in order, each to the last command or a new
        // one: the commands' replies, groups spread over their members,
        // are the calls' replies in order.
        let mut refused = false;
        let mut replies = Vec::with_capacity(self.calls);
        for (command, reply) in self.commands.iter().zip(per_command) {
            match command {
                Command::Group(group) if group.count > 1 => {
                    let members = member_replies(reply, group.count);
                    refused |= members.first() == Some(&Reply::Regroup);
                    replies.extend(members);
                }
                _ => replies.push(reply),
            }
        }
        (replies, refused)
    }
}

impl Command {
    fn body(&self) -> String {
        match self {
            Self::Plain(body) => body.clone(),
            Self::Group(group) if group.count == 1 => group.alone.clone(),
            Self::Group(group) => {
                protocol::script_body(&BATCH, group.eval, group.count, &group.keys, &group.args)
            }
        }
    }
}

/// The `count` members' replies of a batch script call's `reply`.
fn member_replies(reply: Reply, count: usize) -> Vec<Reply> {
    match reply {
        Reply::Result(Json::Array(items)) if items.len() == count => items
            .into_iter()
            .map(|item| match item {
                // The member's own error, as a string.
                Json::Str(message) => protocol::error_reply(200, &message),
                item => Reply::Result(item),
            })
            .collect(),
        Reply::Result(other) => {
            let error =
                StoreError::MalformedReply(format!("a batch of {count} answered {}", other.kind()));
            vec![Reply::Failed(error); count]
        }
        Reply::Failed(StoreError::Command(message)) if message.starts_with("CROSSSLOT") => {
            vec![Reply::Regroup; count]
        }
        other => vec![other; count],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TimeSource;
    use crate::store::{Consume, Key};
    use crate::{scripts, FixedWindow};

    fn call(id: &str) -> ScriptCall {
        let algorithm = FixedWindow::new(3, "1 s").unwrap();
        let consume = Consume {
            algorithm: &algorithm,
            cost: 1,
        };
        ScriptCall::prepare(Key { prefix: "", id }, 0, &consume, TimeSource::Redis).unwrap()
    }

    #[test]
    fn consecutive_script_calls_share_one_command_in_call_order() {
        let mut batch = Batch::new(Grouping::Script);
        batch.add_script(&call("a"), false);
        batch.add_script(&call("b"), false);
        batch.add_command(r#"["DEL","{a}"]"#.into());
        batch.add_script(&call("a"), false);
        assert_eq!(batch.path(), "/pipeline");
        let body = batch.body();
        let sha = scripts::BATCH.sha1();
        assert!(
            body.starts_with(&format!(
                r#"[["EVALSHA","{sha}","2","{{a}}","{{b}}","1","5","","1","0","3","1000","0"],"#
            )),
            "the second call's arguments are the first's: only 0 is sent; {body}"
        );
        assert!(body.contains(r#"],["DEL","{a}"],["EVALSHA","#), "{body}");
        assert!(
            body.ends_with(r#","1","{a}","","1","0","3","1000"]]"#),
            "a group of one goes alone"
        );

        let reply = r#"[{"result":[[1,2,1000,0,0],"WRONGTYPE no"]},{"result":1},{"result":[0,0,1000,9,0]}]"#;
        let (replies, refused) = batch.replies(Ok((200, reply)));
        assert!(!refused);
        assert_eq!(
            replies,
            vec![
                Reply::Result(Json::Array([1, 2, 1000, 0, 0].map(Json::Int).to_vec())),
                Reply::Failed(StoreError::Command("WRONGTYPE no".into())),
                Reply::Result(Json::Int(1)),
                Reply::Result(Json::Array([0, 0, 1000, 9, 0].map(Json::Int).to_vec())),
            ]
        );
    }

    #[test]
    fn a_lone_call_goes_as_it_would_unbatched() {
        let mut batch = Batch::new(Grouping::Script);
        batch.add_script(&call("a"), true);
        assert_eq!(batch.path(), "");
        assert_eq!(batch.body(), call("a").body(true));
        let (replies, _) = batch.replies(Ok((400, r#"{"error":"NOSCRIPT x"}"#)));
        assert_eq!(replies, vec![Reply::NoScript]);
    }

    #[test]
    fn noscript_crossslot_and_failures_reach_every_member() {
        let mut batch = Batch::new(Grouping::Script);
        batch.add_script(&call("a"), false);
        batch.add_script(&call("b"), true);
        assert!(batch.body().starts_with(r#"["EVAL","-- edgelimit batch\n"#));
        let (replies, _) = batch.replies(Ok((400, r#"{"error":"NOSCRIPT x"}"#)));
        assert_eq!(replies, vec![Reply::NoScript, Reply::NoScript]);
        let crossslot = r#"{"error":"CROSSSLOT Keys in request don't hash to the same slot"}"#;
        let (replies, refused) = batch.replies(Ok((400, crossslot)));
        assert_eq!(
            (replies, refused),
            (vec![Reply::Regroup, Reply::Regroup], true)
        );
        let refused = StoreError::Unreachable("refused".into());
        let (replies, _) = batch.replies(Err(refused.clone()));
        assert_eq!(
            replies,
            vec![Reply::Failed(refused.clone()), Reply::Failed(refused)]
        );
        let (replies, _) = batch.replies(Ok((200, r#"{"result":[[1,2,3,4,5]]}"#)));
        assert!(matches!(
            &replies[..],
            [Reply::Failed(StoreError::MalformedReply(_)), _]
        ));
    }

    #[test]
    fn a_pipeline_sends_each_call_alone() {
        let mut batch = Batch::new(Grouping::Pipeline);
        batch.add_script(&call("a"), false);
        batch.add_script(&call("b"), false);
        assert_eq!(
            batch.body(),
            format!("[{},{}]", call("a").body(false), call("b").body(false))
        );
        let body = r#"[{"result":[1]},{"error":"NOSCRIPT x"}]"#;
        let (replies, _) = batch.replies(Ok((200, body)));
        assert_eq!(
            replies,
            vec![
                Reply::Result(Json::Array(vec![Json::Int(1)])),
                Reply::NoScript
            ]
        );
    }
}
