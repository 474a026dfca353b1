//! The balancer: a pure planner (`plan`) that says which moves balance the cluster or empty leaving
//! nodes, the pure step machine (`steps`) that turns one move into configuration changes, and the
//! `Balancer` actor (`actor`) that plans every `lb_interval` and hands moves to `ServerState`.

pub mod actor;
pub mod plan;
pub mod steps;

pub use plan::{copy_lower_bound, plan, BalanceOptions, PlanInput, TableView};
pub use steps::{next_step, projected, Step};
