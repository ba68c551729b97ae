//! Adjustments a test makes to every machine a world builds: at the start,
//! and again whenever it builds one anew (a server restart, an app
//! restart). The oracle's bite tests switch the core's deliberate bugs on
//! this way (`set_sabotage`, behind the core's test-only `sabotage`
//! feature), so no config struct needs a field for them.

use std::fmt;
use std::rc::Rc;

use lockstep_core::client::Client;
use lockstep_core::server::{PrivateChannels, Server, ServerConfig};
use lockstep_core::store::{MemStore, MemStoreConfig};

/// One adjustment of a machine of type `M`.
pub type Hook<M> = Rc<dyn Fn(&mut M)>;

/// What to do to each machine once built; each is optional.
#[derive(Clone, Default)]
pub struct Hooks {
    /// Applied to every client machine (plain apps have none).
    pub client: Option<Hook<Client>>,
    /// Applied to the server machine.
    pub server: Option<Hook<Server<PrivateChannels>>>,
    /// Applied to the store, once.
    pub store: Option<Hook<MemStore>>,
}

impl Hooks {
    /// A client machine, adjusted.
    pub(crate) fn client(&self, mut client: Client) -> Client {
        if let Some(hook) = &self.client {
            hook(&mut client);
        }
        client
    }

    /// A server machine from `config`, adjusted.
    pub(crate) fn server(&self, config: &ServerConfig) -> Server<PrivateChannels> {
        let mut server = Server::with_policy(config.clone(), PrivateChannels);
        if let Some(hook) = &self.server {
            hook(&mut server);
        }
        server
    }

    /// The store from `config`, adjusted.
    pub(crate) fn store(&self, config: MemStoreConfig) -> MemStore {
        let mut store = MemStore::new(config);
        if let Some(hook) = &self.store {
            hook(&mut store);
        }
        store
    }
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("client", &self.client.is_some())
            .field("server", &self.server.is_some())
            .field("store", &self.store.is_some())
            .finish()
    }
}
