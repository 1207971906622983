//! Writes the `NotificationEndpoint` impl: the priorities, the filter (compiled once), and one
//! match arm per method that decodes the notification into the method's parameter type.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::model::Endpoint;

/// The impl. Validation passed: every listener method has one parameter.
pub(super) fn generate(endpoint: &Endpoint<'_>) -> TokenStream {
    let rt = quote!(::rpc_runtime);
    let self_ty = endpoint.self_ty;
    let name = quote!(#self_ty).to_string().replace(' ', "");
    let listeners: Vec<_> = endpoint
        .methods
        .iter()
        .filter(|m| m.is_listener())
        .collect();
    let variant = |p: &str| {
        let mut chars = p.chars();
        let first = chars.next().map(|c| c.to_ascii_uppercase()).unwrap_or('X');
        format_ident!("{}{}", first, chars.as_str())
    };
    let priorities = listeners.iter().filter_map(|m| m.priority).map(|p| {
        let v = variant(p);
        quote!(#rt::notify::Priority::#v)
    });
    let batch = listeners.first().is_some_and(|m| m.batch);
    let first_ty = listeners.first().and_then(|m| m.params.first());
    let is_batch = first_ty.map_or(
        quote!(false),
        |ty| quote!(<#ty as #rt::notify::FromNotifications>::BATCH),
    );
    let arms = listeners.iter().filter_map(|m| {
        let priority = variant(m.priority?);
        let ident = m.ident;
        let ty = m.params.first()?;
        Some(quote! {
            #rt::notify::Priority::#priority => {
                match <#ty as #rt::notify::FromNotifications>::from_notifications(__notifications) {
                    ::std::result::Result::Ok(__arg) => #rt::notify::EndpointOutcome::Ran(
                        #rt::notify::NotificationResult::from(self.#ident(__arg).await),
                    ),
                    ::std::result::Result::Err(__reason) => {
                        #rt::notify::EndpointOutcome::Undecodable(__reason)
                    }
                }
            }
        })
    });
    let dispatch = quote! {
        match __priority {
            #(#arms)*
            #[allow(unreachable_patterns)]
            _ => #rt::notify::EndpointOutcome::Skipped,
        }
    };
    let (one, many) = if batch {
        (quote!(#rt::notify::EndpointOutcome::Skipped), dispatch)
    } else {
        (dispatch, quote!(#rt::notify::EndpointOutcome::Skipped))
    };
    let filter = if endpoint.event_type.is_none()
        && endpoint.publisher_id.is_none()
        && endpoint.context.is_empty()
        && endpoint.payload.is_empty()
    {
        quote!(::std::option::Option::None)
    } else {
        let opt = |v: &Option<syn::LitStr>| match v {
            Some(s) => quote!(::std::option::Option::Some(#s)),
            None => quote!(::std::option::Option::None),
        };
        let event_type = opt(&endpoint.event_type);
        let publisher_id = opt(&endpoint.publisher_id);
        let pairs = |rules: &[(String, proc_macro2::Span, syn::LitStr)]| {
            let items = rules.iter().map(|(k, _, v)| quote!((#k, #v)));
            quote!(&[#(#items),*])
        };
        let context = pairs(&endpoint.context);
        let payload = pairs(&endpoint.payload);
        quote! {{
            static __FILTER: ::std::sync::LazyLock<#rt::notify::NotificationFilter> =
                ::std::sync::LazyLock::new(|| {
                    #rt::__private::notification_filter(#event_type, #publisher_id, #context, #payload)
                });
            ::std::option::Option::Some(&*__FILTER)
        }}
    };
    quote! {
        impl #rt::notify::NotificationEndpoint for #self_ty {
            fn name(&self) -> &str {
                #name
            }

            fn priorities(&self) -> &[#rt::notify::Priority] {
                &[#(#priorities),*]
            }

            fn filter(&self) -> ::std::option::Option<&#rt::notify::NotificationFilter> {
                #filter
            }

            fn is_batch(&self) -> bool {
                #is_batch
            }

            fn handle<'__a>(
                &'__a self,
                __notification: &'__a #rt::notify::RawNotification,
            ) -> #rt::__private::BoxFuture<'__a, #rt::notify::EndpointOutcome> {
                ::std::boxed::Box::pin(async move {
                    let __priority = __notification.priority;
                    let __notifications = ::std::slice::from_ref(__notification);
                    #one
                })
            }

            fn handle_batch<'__a>(
                &'__a self,
                __priority: #rt::notify::Priority,
                __notifications: &'__a [#rt::notify::RawNotification],
            ) -> #rt::__private::BoxFuture<'__a, #rt::notify::EndpointOutcome> {
                ::std::boxed::Box::pin(async move {
                    #many
                })
            }
        }
    }
}
