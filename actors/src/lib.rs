//! The actors of Aerie: the meta server's `ServerState` and the replica server's `ReplicaStub` and
//! `Replica`. Decision logic (placement, the prepare list) is pure and lives next to the actor that
//! uses it; the actors are thin adapters that carry out what it decides.

pub mod collector;
pub mod commands;
pub mod lease;
pub mod meta;
pub mod metrics;
pub mod replica;
