//! ZooKeeper: one session kept on its own thread (`session`), the meta store over it (`store`), the
//! meta leader election (`election`) copying a subtree between ensembles (`copy`), and a throwaway server for tests (`test_server`).

pub mod copy;
pub mod election;
pub mod session;
pub mod store;
pub mod test_server;
