//! What a connection sees: the node's root service, and the module and uploader objects
//! it hands out as netrefs (instances are in [`crate::instance`]).

mod module;
mod root;
mod upload;
mod upload_budget;

pub use self::module::ModuleObject;
pub(crate) use self::module::{describe_exports, is_callable_numeric};
pub use self::root::RootService;
pub use self::upload::Uploader;
pub(crate) use self::upload_budget::UploadBudget;
