//! A component's hook exports: which it has (found once, at load), loaded into each
//! instance, and called with a [`Hook`]'s arguments. The table at the bottom is the
//! runtime's half of [`HookKind`]'s: one row a hook, naming its bindings module and how
//! the hook's arguments become the export's.

use anyhow::Context;
use wasmtime::Store;
use wasmtime::component::{Instance, InstancePre};

use super::WasmtimeResultExt;
use super::bindings::Peer;
use super::state::PluginState;
use crate::hook::{Hook, HookKind};

pub const PACKAGE: &str = "wasmtpd:plugin";
pub const VERSION: &str = "0.1.0";

/// The full name of an interface of the contract, e.g. `wasmtpd:plugin/rcpt-hook@0.1.0`.
pub fn interface_name(interface: &str) -> String {
    format!("{PACKAGE}/{interface}@{VERSION}")
}

/// Finds an exported interface: `Ok(None)` if the component does not export it, an
/// error if it does but not as the contract says.
pub fn find_export<I>(
    pre: &InstancePre<PluginState>,
    interface: &str,
    new: fn(&InstancePre<PluginState>) -> wasmtime::Result<I>,
) -> anyhow::Result<Option<I>> {
    let name = interface_name(interface);
    if pre.component().get_export_index(None, &name).is_none() {
        return Ok(None);
    }
    let found = new(pre)
        .anyhow()
        .with_context(|| format!("its export {name} does not match the contract"))?;
    Ok(Some(found))
}

/// What an export returns, as a hook's answer: notices return nothing.
trait IntoAnswer {
    fn into_answer(self) -> Option<String>;
}

impl IntoAnswer for Option<String> {
    fn into_answer(self) -> Option<String> {
        self
    }
}

impl IntoAnswer for () {
    fn into_answer(self) -> Option<String> {
        None
    }
}

macro_rules! hook_exports {
    (($peer:ident) $( $kind:ident { $($field:tt)* } => $module:ident :: $call:ident ( $($arg:expr),* ); )*) => {
        /// The hook interfaces a component exports: `None` for those it lacks.
        #[derive(Clone)]
        pub struct HookIndices {
            $( $module: Option<super::bindings::exports::wasmtpd::plugin::$module::GuestIndices>, )*
        }

        impl HookIndices {
            /// Looks for every hook interface; one that is there but does not match the
            /// contract is an error.
            pub fn find(pre: &InstancePre<PluginState>) -> anyhow::Result<HookIndices> {
                Ok(HookIndices {
                    $( $module: find_export(
                        pre,
                        &format!("{}-hook", HookKind::$kind.name()),
                        super::bindings::exports::wasmtpd::plugin::$module::GuestIndices::new,
                    )?, )*
                })
            }

            pub fn has(&self, kind: HookKind) -> bool {
                match kind {
                    $( HookKind::$kind => self.$module.is_some(), )*
                }
            }

            /// The hooks' exports in one instance.
            pub fn load(&self, store: &mut Store<PluginState>, instance: &Instance) -> wasmtime::Result<HookGuests> {
                Ok(HookGuests {
                    $( $module: self.$module.as_ref().map(|i| i.load(&mut *store, instance)).transpose()?, )*
                })
            }
        }

        /// One instance's hook exports.
        pub struct HookGuests {
            $( $module: Option<super::bindings::exports::wasmtpd::plugin::$module::Guest>, )*
        }

        impl HookGuests {
            /// Calls the hook's export with its arguments; `None` if the component lacks it.
            pub async fn call(
                &self,
                store: &mut Store<PluginState>,
                hook: Hook<'_>,
                $peer: &Peer,
            ) -> Option<wasmtime::Result<Option<String>>> {
                match hook {
                    $( Hook::$kind { $($field)* } => {
                        let guest = self.$module.as_ref()?;
                        Some(guest.$call(store, $($arg),*).await.map(IntoAnswer::into_answer))
                    } )*
                }
            }
        }
    };
}

hook_exports! {
    (peer)
    Connect {}                  => connect_hook::call_on_connect(peer);
    Helo { name, extended }     => helo_hook::call_on_helo(name, extended);
    Mail { from, options, .. }  => mail_hook::call_on_mail(from, options);
    Rcpt { to, options }        => rcpt_hook::call_on_rcpt(to, options);
    Data {}                     => data_hook::call_on_data();
    Auth { identity, password } => auth_hook::call_on_auth(identity, password.0);
    Rset {}                     => rset_hook::call_on_rset();
    Quit {}                     => quit_hook::call_on_quit();
}

impl HookIndices {
    /// The names of the hooks the component exports, in the table's order.
    pub fn names(&self) -> Vec<&'static str> {
        HookKind::ALL
            .iter()
            .filter(|kind| self.has(**kind))
            .map(|kind| kind.name())
            .collect()
    }
}
