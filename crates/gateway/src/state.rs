//! What every handler shares: the router (and the controller below it),
//! the triggers, the workflows, who may call.

use crate::auth::Auth;
use std::sync::Arc;
use weft_controller::Controller;
use weft_triggers::Triggers;

/// The gateway's state.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) router: Arc<weft_router::Router>,
    pub(crate) controller: Arc<Controller>,
    pub(crate) triggers: Option<Arc<Triggers>>,
    pub(crate) workflows: Arc<weft_workflow::Workflows>,
    pub(crate) auth: Arc<Auth>,
}
