//! # lockstep-wasm
//!
//! The lockstep client machine for the browser, as a WebAssembly module
//! driven by the TypeScript package `@lockstep/client` (`adapters/web`)
//! with `socket.io-client` as its transport.
//!
//! **One call in, one batch out.** Every method takes `now` (milliseconds
//! of a monotonic clock, e.g. `performance.now()`) and returns a [`Batch`]
//! as JSON text: the socket work to do (open, connect, emit, close, each
//! tagged with its generation; emits already mapped to the Socket.IO event
//! name, payload and ack by `lockstep_core::wire::socketio`), the app
//! events, and the next deadline for `tick`. Rust never calls back into
//! JavaScript, so the machine stays deterministic and the glue stays thin.
//!
//! The logic lives in [`Machine`] (plain Rust, tested on the host); the
//! [`WasmClient`] glue only converts arguments and serializes batches.
//! TypeScript types of everything that crosses are generated from the same
//! serde definitions ([`dto`], [`config`]) by tsify into the module's
//! `.d.ts`.
//!
//! Build it with `scripts/web-build` (cargo's `wasm-release` profile, then
//! the pinned `wasm-bindgen` CLI).

pub mod config;
pub mod dto;
pub mod machine;
pub mod packets;

use std::cell::RefCell;

/// The browser build's allocator: talc instead of dlmalloc, a few KiB less
/// of module (the size budget is `adapters/web/scripts/size.mjs`'s) and no
/// slower on the inbound bench. The module is single-threaded.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

use wasm_bindgen::prelude::*;

pub use config::{ConfigError, WebConfig};
pub use dto::Batch;
pub use machine::Machine;

thread_local! {
    /// The message of the last panic, kept by the panic hook: a panic
    /// aborts the instance (a trap in JavaScript), and the driver reads
    /// this to report why before it builds a new instance.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info.to_string();
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(message));
    }));
}

/// The message of the last Rust panic in this instance, if any: after a
/// call threw a `RuntimeError` (the instance is dead), this says why.
#[wasm_bindgen(js_name = lastPanic)]
#[must_use]
pub fn last_panic() -> Option<String> {
    LAST_PANIC.with(|p| p.borrow().clone())
}

fn json(batch: &Batch) -> String {
    batch.to_json()
}

/// The client machine, for JavaScript. Every method returns a `Batch` as
/// JSON text (`JSON.parse` it as the generated `Batch` type).
#[wasm_bindgen]
#[derive(Debug)]
pub struct WasmClient {
    machine: Machine,
}

#[wasm_bindgen]
impl WasmClient {
    /// A machine configured by `options_json` (a `WebConfig` object's JSON
    /// text) and seeded by `seed` (from `crypto.getRandomValues`).
    ///
    /// # Errors
    ///
    /// A JavaScript `Error` naming the option that is out of range.
    #[wasm_bindgen(constructor)]
    pub fn new(options_json: &str, seed: u64) -> Result<WasmClient, JsError> {
        install_panic_hook();
        let options = WebConfig::from_json(options_json)?;
        Ok(WasmClient {
            machine: Machine::new(&options, seed)?,
        })
    }

    /// Starts connecting.
    pub fn connect(&mut self, now: f64) -> String {
        json(&self.machine.connect(now))
    }

    /// Closes for good.
    pub fn close(&mut self, now: f64) -> String {
        json(&self.machine.close(now))
    }

    /// Wants `channel` subscribed.
    pub fn subscribe(&mut self, now: f64, channel: &str) -> String {
        json(&self.machine.subscribe(now, channel))
    }

    /// Wants `channel` subscribed, resuming after `last_seq` of `epoch`.
    #[wasm_bindgen(js_name = subscribeFrom)]
    pub fn subscribe_from(
        &mut self,
        now: f64,
        channel: &str,
        epoch: &str,
        last_seq: f64,
    ) -> String {
        json(&self.machine.subscribe_from(now, channel, epoch, last_seq))
    }

    /// No longer wants `channel`.
    pub fn unsubscribe(&mut self, now: f64, channel: &str) -> String {
        json(&self.machine.unsubscribe(now, channel))
    }

    /// Queues a message; `body_json` is its JSON text.
    pub fn send(&mut self, now: f64, channel: &str, body_json: &str) -> String {
        json(&self.machine.send(now, channel, body_json))
    }

    /// Queues an edit.
    pub fn update(&mut self, now: f64, channel: &str, message_id: &str, body_json: &str) -> String {
        json(&self.machine.update(now, channel, message_id, body_json))
    }

    /// Queues a deletion.
    pub fn delete(&mut self, now: f64, channel: &str, message_id: &str) -> String {
        json(&self.machine.delete(now, channel, message_id))
    }

    /// Marks a channel read up to `up_to`.
    #[wasm_bindgen(js_name = markRead)]
    pub fn mark_read(&mut self, now: f64, channel: &str, up_to: f64) -> String {
        json(&self.machine.mark_read(now, channel, up_to))
    }

    /// Shows or hides our typing indicator.
    #[wasm_bindgen(js_name = setTyping)]
    pub fn set_typing(&mut self, now: f64, channel: &str, active: bool) -> String {
        json(&self.machine.set_typing(now, channel, active))
    }

    /// Socket `generation`'s Engine.IO connection is open; `token` is the
    /// credentials for its namespace connect.
    pub fn opened(&mut self, now: f64, generation: f64, token: Option<String>) -> String {
        json(&self.machine.opened(now, generation, token))
    }

    /// Socket `generation` closed or failed to open.
    pub fn closed(&mut self, now: f64, generation: f64, reason: &str) -> String {
        json(&self.machine.closed(now, generation, reason))
    }

    /// Socket `generation` got `connect_error` with `message`.
    #[wasm_bindgen(js_name = connectError)]
    pub fn connect_error(&mut self, now: f64, generation: f64, message: &str) -> String {
        json(&self.machine.connect_error(now, generation, message))
    }

    /// Socket `generation` received event `name` (payload as JSON text).
    pub fn event(&mut self, now: f64, generation: f64, name: &str, payload_json: &str) -> String {
        json(&self.machine.event(now, generation, name, payload_json))
    }

    /// Several events of socket `generation`, in arrival order: their
    /// packets' JSON text (`["name", payload]`) in UTF-8 one after
    /// another, and the byte length of each.
    pub fn events(&mut self, now: f64, generation: f64, packets: &[u8], lengths: &[u32]) -> String {
        json(&self.machine.events(now, generation, packets, lengths))
    }

    /// The ack of request `req` (of `kind`) arrived on socket `generation`.
    pub fn ack(
        &mut self,
        now: f64,
        generation: f64,
        req: f64,
        kind: &str,
        reply_json: &str,
    ) -> String {
        json(&self.machine.ack(now, generation, req, kind, reply_json))
    }

    /// Fires the timers due at `now`.
    pub fn tick(&mut self, now: f64) -> String {
        json(&self.machine.tick(now))
    }

    /// Every unresolved outbox entry, as snapshot JSON to persist.
    #[wasm_bindgen(js_name = exportOutbox)]
    #[must_use]
    pub fn export_outbox(&self) -> String {
        self.machine.export_outbox()
    }

    /// Restores a persisted snapshot.
    #[wasm_bindgen(js_name = restoreOutbox)]
    pub fn restore_outbox(&mut self, now: f64, snapshot_json: &str) -> String {
        json(&self.machine.restore_outbox(now, snapshot_json))
    }

    /// What the machine still holds (an `Inspection` as JSON), for leak
    /// checks.
    #[must_use]
    pub fn inspect(&self) -> String {
        self.machine.inspect().to_json()
    }

    /// Panics on purpose, which ends this instance: lets an app (and the
    /// package's tests) exercise the recovery path.
    pub fn crash(&mut self) {
        panic!("crash() called: deliberate panic to test recovery");
    }
}

#[cfg(test)]
mod tests;
