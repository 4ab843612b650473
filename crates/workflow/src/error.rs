//! Workflow errors: each names one [`Code`], which fixes its status.

use weft_codes::Code;

/// Why a workflow action was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A workflow that does not validate, or names a function the node
    /// does not have; `field` is its path (`workflows.NAME.steps[1].after[0]`).
    #[error("{field}: {message}")]
    Invalid {
        /// The path of the field at fault.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A run's input that does not fit what its first step declares it
    /// takes.
    #[error("step `{step}` cannot take the run's input: {message}")]
    Input {
        /// The step.
        step: String,
        /// Where and how the input does not fit.
        message: String,
    },
    /// No workflow by that name.
    #[error("workflow `{0}` not found")]
    WorkflowNotFound(String),
    /// No run with that id.
    #[error("workflow run `{0}` not found")]
    RunNotFound(String),
    /// The run has no such step.
    #[error("run `{run}` has no step `{step}`")]
    StepNotFound {
        /// The run.
        run: String,
        /// The step asked for.
        step: String,
    },
    /// An action that needs a run still going.
    #[error("run `{run}` has ended ({state}): {what}")]
    RunEnded {
        /// The run.
        run: String,
        /// How it ended.
        state: &'static str,
        /// What was refused.
        what: String,
    },
    /// An action that needs a run that has ended.
    #[error("run `{run}` is still going: cancel it before you {what}")]
    RunActive {
        /// The run.
        run: String,
        /// What was refused.
        what: String,
    },
    /// An event that cannot go to the run.
    #[error("event `{event}` for run `{run}`: {message}")]
    Event {
        /// The run.
        run: String,
        /// The event.
        event: String,
        /// What is wrong.
        message: String,
    },
    /// An event by that name was sent to the run before.
    #[error("event `{event}` was already sent to run `{run}`: each is delivered once")]
    EventSent {
        /// The run.
        run: String,
        /// The event.
        event: String,
    },
    /// Another writer changed the run meanwhile (an operator, or another
    /// node that took it over): nothing was written.
    #[error("run `{0}` changed while this action was being taken; try again")]
    Conflict(String),
    /// The journal's store failed.
    #[error("the workflow journal: {0}")]
    Store(#[from] weft_kv::KvError),
    /// A record in the journal that does not parse.
    #[error("the workflow journal holds a bad record at `{key}`: {message}")]
    Corrupt {
        /// Its key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// Result of workflow operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The stable code; it fixes the HTTP status.
    pub fn code(&self) -> Code {
        match self {
            Error::Invalid { .. } => Code::InvalidWorkflow,
            Error::Input { .. } => Code::InvalidStepInput,
            Error::WorkflowNotFound(_) => Code::WorkflowNotFound,
            Error::RunNotFound(_) => Code::RunNotFound,
            Error::StepNotFound { .. } => Code::StepNotFound,
            Error::RunEnded { .. } => Code::RunEnded,
            Error::RunActive { .. } => Code::RunActive,
            Error::Event { .. } => Code::InvalidEvent,
            Error::EventSent { .. } => Code::EventSent,
            Error::Conflict(_) => Code::StateConflict,
            Error::Store(e) => e.code(),
            Error::Corrupt { .. } => Code::Internal,
        }
    }

    /// The field at fault, for `invalid_workflow`.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}
