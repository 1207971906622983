//! The dispatch table: `impl Endpoint for Manager`, with a static descriptor and one match arm per
//! method (decode named arguments → call → encode the result or the typed error).

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::{option_str, private, rt, version};
use crate::model::{Endpoint, Kind, Method, Output, PeriodicTask};

pub(super) fn endpoint_impl(endpoint: &Endpoint) -> TokenStream {
    let rt = rt();
    let p = private();
    let self_ty = &endpoint.self_ty;
    let name = endpoint.name.to_string();
    let topic = option_str(Some(&endpoint.topic));
    let namespace = option_str(endpoint.namespace.as_deref());
    let endpoint_version = version(endpoint.version.value);
    let descriptors = endpoint.methods.iter().map(method_descriptor);
    let arms = endpoint.methods.iter().map(arm);
    let task_descriptors = endpoint.periodic_tasks.iter().map(task_descriptor);
    let run_periodic = run_periodic_task(endpoint);
    let aliases = endpoint.aliases.iter().map(|(name, v)| {
        let v = version(v.value);
        quote!((#name, #v))
    });
    quote! {
        #[automatically_derived]
        impl #rt::Endpoint for #self_ty {
            fn descriptor(&self) -> &#rt::EndpointDescriptor {
                static __RPC_DESCRIPTOR: #rt::EndpointDescriptor = #rt::EndpointDescriptor::new(
                    #name, #topic, #namespace, #endpoint_version, &[#(#descriptors),*],
                )
                .with_periodic_tasks(&[#(#task_descriptors),*])
                .with_aliases(&[#(#aliases),*]);
                &__RPC_DESCRIPTOR
            }

            #[allow(clippy::used_underscore_binding)]
            fn invoke<'__rpc>(
                &'__rpc self,
                __rpc_ctx: #rt::Context,
                __rpc_method: &'__rpc str,
                __rpc_args: #rt::envelope::Args,
            ) -> #p::BoxFuture<
                '__rpc,
                ::core::result::Result<
                    #rt::envelope::JsonText,
                    #rt::RemoteError,
                >,
            > {
                match __rpc_method {
                    #(#arms)*
                    _ => ::std::boxed::Box::pin(::core::future::ready(
                        ::core::result::Result::Err(#p::no_such_method(__rpc_method)),
                    )),
                }
            }

            #run_periodic
        }
    }
}

fn task_descriptor(task: &PeriodicTask) -> TokenStream {
    let rt = rt();
    let name = &task.name;
    let spacing = proc_macro2::Literal::u64_unsuffixed(task.spacing_secs.value);
    let run_immediately = task.run_immediately;
    quote!(#rt::PeriodicTaskDescriptor::new(
        #name,
        ::core::time::Duration::from_secs(#spacing),
        #run_immediately,
    ))
}

/// `run_periodic_task`: one arm per task (none generated when there are no tasks: the trait's
/// default answers).
fn run_periodic_task(endpoint: &Endpoint) -> TokenStream {
    if endpoint.periodic_tasks.is_empty() {
        return TokenStream::new();
    }
    let rt = rt();
    let p = private();
    let arms = endpoint.periodic_tasks.iter().map(|task| {
        let name = &task.name;
        let ident = &task.ident;
        let finish = match &task.output {
            Output::Fallible { err, .. } => {
                let failed = quote_spanned!(err.span()=> #p::periodic_failed(&__rpc_error));
                quote!(__rpc_out.map_err(|__rpc_error| #failed))
            }
            _ => quote!({
                let () = __rpc_out;
                ::core::result::Result::Ok(())
            }),
        };
        quote! {
            #name => ::std::boxed::Box::pin(async move {
                let __rpc_out = self.#ident(&__rpc_ctx).await;
                #finish
            }),
        }
    });
    quote! {
        fn run_periodic_task<'__rpc>(
            &'__rpc self,
            __rpc_ctx: #rt::Context,
            __rpc_name: &'__rpc str,
        ) -> #p::BoxFuture<'__rpc, ::core::result::Result<(), #rt::PeriodicTaskError>> {
            match __rpc_name {
                #(#arms)*
                _ => ::std::boxed::Box::pin(::core::future::ready(::core::result::Result::Err(
                    #rt::PeriodicTaskError::NoSuchTask(::std::string::ToString::to_string(__rpc_name)),
                ))),
            }
        }
    }
}

fn method_descriptor(method: &Method) -> TokenStream {
    let rt = rt();
    let name = &method.wire_name;
    let since = version(method.since.value);
    let kind = match method.kind {
        Kind::Call => quote!(#rt::MethodKind::Call),
        Kind::Cast(_) => quote!(#rt::MethodKind::Cast),
    };
    let args = method.args.iter().map(|arg| {
        let name = &arg.wire_name;
        let ty = arg.type_text();
        let since = match &arg.since {
            Some(s) => {
                let v = version(s.value);
                quote!(::core::option::Option::Some(#v))
            }
            None => quote!(::core::option::Option::None),
        };
        quote!(#rt::ArgDescriptor::new(#name, #ty, #since))
    });
    quote!(#rt::MethodDescriptor::new(#name, #since, #kind, &[#(#args),*]))
}

fn arm(method: &Method) -> TokenStream {
    let p = private();
    let wire_name = &method.wire_name;
    let ident = &method.ident;
    let takes = method.args.iter().map(|arg| {
        let local = &arg.ident;
        let name = &arg.wire_name;
        let ty = &arg.ty;
        let wire = quote_spanned!(ty.span()=> #p::wire::<#ty>());
        quote!(let #local = __rpc_reader.take(#name, #wire)?;)
    });
    let locals = method.args.iter().map(|arg| &arg.ident);
    let encode = match &method.output {
        Output::Unit => quote!(#p::encode_ok(&__rpc_out, #p::wire::<()>())),
        Output::Plain(ty) => {
            let wire = quote_spanned!(ty.span()=> #p::wire::<#ty>());
            quote!(#p::encode_ok(&__rpc_out, #wire))
        }
        Output::Fallible { ok, err } => {
            let wire = quote_spanned!(ok.span()=> #p::wire::<#ok>());
            let fallible = quote_spanned!(err.span()=> #p::fallible::<#err>());
            quote!(#p::encode_result(__rpc_out, #wire, #fallible))
        }
    };
    let boxed = quote_spanned!(ident.span()=> ::std::boxed::Box::pin(__rpc_future));
    quote! {
        #wire_name => {
            let __rpc_future = async move {
                let mut __rpc_reader = #p::ArgsReader::new(__rpc_method, &__rpc_args)?;
                #(#takes)*
                __rpc_reader.finish()?;
                let __rpc_out = self.#ident(&__rpc_ctx, #(#locals),*).await;
                #encode
            };
            #boxed
        }
    }
}
