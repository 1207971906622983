//! The generated code: `impl VersionedObject` (the field codec, newer fields dropped for older
//! targets) and serde's `Serialize` / `Deserialize` through the primitive.

use proc_macro2::{Literal, TokenStream};
use quote::quote;

use super::model::Object;
use crate::model::Version;

fn version(v: Version) -> TokenStream {
    let major = Literal::u64_unsuffixed(v.major);
    let minor = Literal::u64_unsuffixed(v.minor);
    quote!(::rpc_runtime::Version::new(#major, #minor))
}

pub(super) fn generate(object: &Object) -> TokenStream {
    let ident = &object.ident;
    let name = &object.name.value;
    let namespace = &object.namespace.value;
    let serial = &object.serial_namespace;
    let current = version(object.version.value);
    let obj = quote!(::rpc_runtime::object);
    let serde = quote!(::rpc_runtime::__private::serde);
    let json = quote!(::rpc_runtime::__private::serde_json);

    let puts = object.fields.iter().map(|field| {
        let ident = &field.ident;
        let key = &field.key;
        let keep_null = field.nullable || !field.is_option;
        let put = quote! {
            #obj::codec::put(&mut data, #name, #key, &self.#ident, #keep_null)?;
        };
        match field.since {
            Some(since) if since.value.minor > 0 => {
                let since = version(since.value);
                quote!(if target >= #since { #put })
            }
            _ => put,
        }
    });
    let takes = object.fields.iter().map(|field| {
        let ident = &field.ident;
        let key = &field.key;
        let ty = &field.ty;
        let missing = if field.default {
            quote!(::core::option::Option::Some(<#ty as ::core::default::Default>::default))
        } else if field.is_option {
            quote!(::core::option::Option::Some(|| {
                ::core::option::Option::None
            }))
        } else {
            quote!(::core::option::Option::None)
        };
        quote! {
            #ident: #obj::codec::take::<#ty>(data, #name, version, #key, #missing)?
        }
    });

    quote! {
        impl #obj::VersionedObject for #ident {
            const NAME: &'static str = #name;
            const NAMESPACE: &'static str = #namespace;
            const SERIAL_NAMESPACE: &'static str = #serial;
            const VERSION: ::rpc_runtime::Version = #current;

            fn encode_data(
                &self,
                target: ::rpc_runtime::Version,
            ) -> ::core::result::Result<#json::Map<::std::string::String, #json::Value>, #obj::ObjectError> {
                let _ = target;
                let mut data = #json::Map::new();
                #(#puts)*
                ::core::result::Result::Ok(data)
            }

            fn decode_data(
                data: &#json::Map<::std::string::String, #json::Value>,
                version: ::rpc_runtime::Version,
            ) -> ::core::result::Result<Self, #obj::ObjectError> {
                let _ = (data, version);
                ::core::result::Result::Ok(Self { #(#takes),* })
            }
        }

        impl #serde::Serialize for #ident {
            fn serialize<S: #serde::Serializer>(&self, serializer: S) -> ::core::result::Result<S::Ok, S::Error> {
                let primitive = #obj::to_primitive_at(self, #obj::send_version::<Self>())
                    .map_err(<S::Error as #serde::ser::Error>::custom)?;
                #serde::Serialize::serialize(&primitive, serializer)
            }
        }

        impl<'de> #serde::Deserialize<'de> for #ident {
            fn deserialize<D: #serde::Deserializer<'de>>(deserializer: D) -> ::core::result::Result<Self, D::Error> {
                let primitive = <#json::Value as #serde::Deserialize>::deserialize(deserializer)?;
                #obj::from_primitive(&primitive).map_err(<D::Error as #serde::de::Error>::custom)
            }
        }
    }
}
