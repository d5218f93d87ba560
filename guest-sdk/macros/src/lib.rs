//! The attributes of `rwc-guest`: `#[export]` and `#[object]`. Use them through
//! `rwc_guest`, which documents them; the generated code calls `rwc_guest::__private`.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{
    Attribute, Error, Expr, FnArg, ImplItem, ImplItemFn, ItemFn, ItemImpl, Lit, LitStr, Meta, Pat,
    ReturnType, Signature, Type, Visibility, parse_macro_input,
};

/// Makes a function a rich export `rwc_export_NAME`. See `rwc_guest::export`.
#[proc_macro_attribute]
pub fn export(attr: TokenStream, item: TokenStream) -> TokenStream {
    let func = parse_macro_input!(item as ItemFn);
    let mut name: Option<LitStr> = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            name = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            Err(meta.error("unknown option; the one option is `name = \"...\"`"))
        }
    });
    if let Err(e) = parser.parse(attr) {
        return e.to_compile_error().into();
    }
    expand_export(&func, name)
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

/// Makes the `pub` methods of an inherent impl block callable through a netref. See
/// `rwc_guest::object`.
#[proc_macro_attribute]
pub fn object(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return Error::new(Span::call_site(), "`#[object]` takes no options")
            .to_compile_error()
            .into();
    }
    let block = parse_macro_input!(item as ItemImpl);
    expand_object(&block)
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

fn expand_export(func: &ItemFn, name: Option<LitStr>) -> syn::Result<TokenStream2> {
    let sig = &func.sig;
    check_signature(sig)?;
    if let Some(FnArg::Receiver(r)) = sig.inputs.first() {
        return Err(Error::new(
            r.span(),
            "#[export] goes on a free function; for methods use #[object] on the impl block",
        ));
    }
    let ident = &sig.ident;
    let export_name = name.map_or_else(|| ident.to_string(), |n| n.value());
    if export_name.is_empty() {
        return Err(Error::new(ident.span(), "the export name is empty"));
    }
    let symbol = rwc_api::abi::rich_export_symbol(&export_name);
    let dispatcher = format_ident!("__rwc_call_{}", ident);
    let entry = format_ident!("__rwc_export_{}", ident);
    let params = params(sig, &export_name)?;
    let record = signature_record(&export_name, &params, &sig.output, &func.attrs);
    let record_len = record.len();
    let record = syn::LitByteStr::new(&record, Span::call_site());
    let call_args = &params.names;
    let body = dispatch_body(
        &export_name,
        &params,
        quote!(#ident(#(#call_args),*)),
        &sig.output,
    );

    Ok(quote! {
        #func

        #[doc(hidden)]
        #[allow(non_snake_case, dead_code)]
        fn #dispatcher(
            __rwc_args: ::rwc_guest::__private::Vec<::rwc_guest::__private::Value>,
        ) -> ::rwc_guest::__private::Result<
            ::rwc_guest::__private::Value,
            ::rwc_guest::__private::Error,
        > {
            #body
        }

        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        #[allow(non_snake_case, unsafe_code)]
        #[unsafe(export_name = #symbol)]
        pub extern "C" fn #entry(ptr: i32, len: i32) -> i64 {
            ::rwc_guest::__private::export_entry(ptr, len, #dispatcher)
        }

        // The export's signature and doc, one JSON line in the module's `rwc.exports`
        // custom section (docs/abi.md), for `rwc exports` and the node's descriptions.
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            #[used]
            #[unsafe(link_section = "rwc.exports")]
            static SIGNATURE: [u8; #record_len] = *#record;
        };
    })
}

fn expand_object(block: &ItemImpl) -> syn::Result<TokenStream2> {
    if let Some((_, path, _)) = &block.trait_ {
        return Err(Error::new(
            path.span(),
            "#[object] goes on an inherent impl block (`impl Counter { .. }`), not a trait impl",
        ));
    }
    let self_ty = &block.self_ty;
    let type_name = tidy(&quote!(#self_ty).to_string());
    let mut names = Vec::new();
    let mut docs = Vec::new();
    let mut arms = Vec::new();
    for item in &block.items {
        let ImplItem::Fn(method) = item else { continue };
        if !is_callable(method) {
            continue;
        }
        let sig = &method.sig;
        check_signature(sig)?;
        let ident = &sig.ident;
        let name = ident.to_string();
        let function = format!("{type_name}.{name}");
        let params = params(sig, &function)?;
        let call_args = &params.names;
        let body = dispatch_body(
            &function,
            &params,
            quote!(Self::#ident(self, #(#call_args),*)),
            &sig.output,
        );
        arms.push(quote!(#name => { #body }));
        docs.push(method_doc(
            &name,
            &params.described,
            &sig.output,
            &method.attrs,
        ));
        names.push(name);
    }
    let (impl_generics, _, where_clause) = block.generics.split_for_impl();

    Ok(quote! {
        #block

        impl #impl_generics ::rwc_guest::__private::GuestObject for #self_ty #where_clause {
            fn call(
                &mut self,
                __rwc_method: &str,
                __rwc_args: ::rwc_guest::__private::Vec<::rwc_guest::__private::Value>,
            ) -> ::rwc_guest::__private::Result<
                ::rwc_guest::__private::Value,
                ::rwc_guest::__private::Error,
            > {
                match __rwc_method {
                    #(#arms)*
                    _ => ::rwc_guest::__private::Result::Err(
                        ::rwc_guest::__private::no_such_method(
                            #type_name,
                            __rwc_method,
                            &[#(#names),*],
                        ),
                    ),
                }
            }

            fn methods(&self) -> ::rwc_guest::__private::Vec<::rwc_guest::__private::String> {
                ::rwc_guest::__private::Vec::from([
                    #(::rwc_guest::__private::String::from(#names)),*
                ])
            }

            fn method_docs(
                &self,
            ) -> ::rwc_guest::__private::Vec<(
                ::rwc_guest::__private::String,
                ::rwc_guest::__private::String,
            )> {
                ::rwc_guest::__private::Vec::from([
                    #((
                        ::rwc_guest::__private::String::from(#names),
                        ::rwc_guest::__private::String::from(#docs),
                    )),*
                ])
            }
        }
    })
}

/// The parameters of a function, past the receiver.
struct Params {
    /// Local names the dispatcher binds the converted arguments to.
    names: Vec<syn::Ident>,
    /// Their types.
    types: Vec<Type>,
    /// `"name: Type"` each, for messages.
    described: Vec<String>,
    /// The parameter names as written (a pattern as its text).
    labels: Vec<String>,
    /// The types as written.
    type_texts: Vec<String>,
}

fn params(sig: &Signature, function: &str) -> syn::Result<Params> {
    let mut out = Params {
        names: Vec::new(),
        types: Vec::new(),
        described: Vec::new(),
        labels: Vec::new(),
        type_texts: Vec::new(),
    };
    for arg in &sig.inputs {
        let FnArg::Typed(pt) = arg else { continue };
        check_param_type(&pt.ty, function)?;
        let label = match &*pt.pat {
            Pat::Ident(p) => p.ident.to_string(),
            other => tidy(&quote!(#other).to_string()),
        };
        let ty = &*pt.ty;
        let ty_text = tidy(&quote!(#ty).to_string());
        out.described.push(format!("{label}: {ty_text}"));
        out.labels.push(label);
        out.type_texts.push(ty_text);
        out.names
            .push(format_ident!("__rwc_arg{}", out.names.len()));
        out.types.push(ty.clone());
    }
    Ok(out)
}

/// Converts the arguments, makes the call, converts the result.
fn dispatch_body(
    function: &str,
    params: &Params,
    call: TokenStream2,
    output: &ReturnType,
) -> TokenStream2 {
    let described = &params.described;
    let names = &params.names;
    let types = &params.types;
    let take_args = if names.is_empty() {
        quote! {
            ::rwc_guest::__private::Args::new(#function, __rwc_args, &[])?;
        }
    } else {
        quote! {
            let mut __rwc_args =
                ::rwc_guest::__private::Args::new(#function, __rwc_args, &[#(#described),*])?;
            #[allow(unused_imports)]
            use ::rwc_guest::__private::{TakeBytes as _, TakeValue as _};
            #(let #names: #types =
                (&::rwc_guest::__private::Param::<#types>::new()).take(&mut __rwc_args)?;)*
        }
    };
    let ret = if returns_result(output) {
        let span = output.span();
        quote_spanned! {span=>
            match __rwc_ret {
                ::rwc_guest::__private::Result::Ok(v) => {
                    #[allow(unused_imports)]
                    use ::rwc_guest::__private::{BytesResult as _, SerdeResult as _};
                    ::rwc_guest::__private::Ret(v).into_result_value(#function)
                }
                ::rwc_guest::__private::Result::Err(e) => {
                    #[allow(unused_imports)]
                    use ::rwc_guest::__private::{ViaDisplay as _, ViaRwcError as _};
                    ::rwc_guest::__private::Result::Err(
                        (&::rwc_guest::__private::ErrorWrap(e)).into_rwc_error(),
                    )
                }
            }
        }
    } else {
        quote! {{
            #[allow(unused_imports)]
            use ::rwc_guest::__private::{BytesResult as _, SerdeResult as _};
            ::rwc_guest::__private::Ret(__rwc_ret).into_result_value(#function)
        }}
    };
    quote! {
        #take_args
        let __rwc_ret = #call;
        #ret
    }
}

/// The type of what a successful call returns: `T` of `Result<T, E>` (or of a one-argument
/// alias such as `io::Result<T>`), else the declared type; `None` for `()` or nothing.
fn success_type(output: &ReturnType) -> Option<&Type> {
    let ReturnType::Type(_, ty) = output else {
        return None;
    };
    let ok = returns_result(output)
        .then(|| match &**ty {
            Type::Path(p) => p.path.segments.last().and_then(|s| match &s.arguments {
                syn::PathArguments::AngleBracketed(a) => a.args.first().and_then(|arg| match arg {
                    syn::GenericArgument::Type(t) => Some(t),
                    _ => None,
                }),
                _ => None,
            }),
            _ => None,
        })
        .flatten()
        .unwrap_or(ty);
    match ok {
        Type::Tuple(t) if t.elems.is_empty() => None,
        other => Some(other),
    }
}

/// Whether the declared return type is `Result<..>` (by its last path segment).
fn returns_result(output: &ReturnType) -> bool {
    match output {
        ReturnType::Type(_, ty) => match &**ty {
            Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Result"),
            _ => false,
        },
        ReturnType::Default => false,
    }
}

fn check_signature(sig: &Signature) -> syn::Result<()> {
    if let Some(a) = &sig.asyncness {
        return Err(Error::new(
            a.span(),
            "rwc guest functions cannot be async: a guest runs one call at a time",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(Error::new(
            sig.generics.span(),
            "rwc guest functions cannot be generic: callers need concrete parameter types",
        ));
    }
    if let Some(v) = &sig.variadic {
        return Err(Error::new(
            v.span(),
            "rwc guest functions cannot be variadic",
        ));
    }
    Ok(())
}

fn check_param_type(ty: &Type, function: &str) -> syn::Result<()> {
    match ty {
        Type::Reference(r) => Err(Error::new(
            r.span(),
            format!(
                "parameters of `{function}` must be owned types (`String`, not `&str`; \
                 `Vec<T>`, not `&[T]`): arguments arrive as values"
            ),
        )),
        Type::ImplTrait(t) => Err(Error::new(
            t.span(),
            format!("parameters of `{function}` need concrete types, not `impl Trait`"),
        )),
        _ => Ok(()),
    }
}

/// Public methods with a `&self` or `&mut self` receiver.
fn is_callable(method: &ImplItemFn) -> bool {
    matches!(method.vis, Visibility::Public(_))
        && matches!(
            method.sig.inputs.first(),
            Some(FnArg::Receiver(r)) if matches!(&*r.ty, Type::Reference(_))
        )
}

/// `incr(by: i64) -> i64: Adds by.`: the signature (with the success type of a `Result`)
/// and the first line of the doc comment.
fn method_doc(name: &str, params: &[String], output: &ReturnType, attrs: &[Attribute]) -> String {
    let mut doc = format!("{name}({})", params.join(", "));
    if let Some(ty) = success_type(output) {
        doc.push_str(" -> ");
        doc.push_str(&tidy(&quote!(#ty).to_string()));
    }
    if let Some(line) = doc_text(attrs)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
    {
        doc.push_str(": ");
        doc.push_str(line);
    }
    doc
}

/// One line of the `rwc.exports` custom section: the export's name, parameters, result
/// type and doc comment as a JSON object, then `\n`.
fn signature_record(
    name: &str,
    params: &Params,
    output: &ReturnType,
    attrs: &[Attribute],
) -> Vec<u8> {
    let mut json = format!("{{\"name\":{},\"params\":[", json_string(name));
    for (i, (label, ty)) in params.labels.iter().zip(&params.type_texts).enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&format!(
            "{{\"name\":{},\"type\":{}}}",
            json_string(label),
            json_string(ty)
        ));
    }
    json.push(']');
    if let Some(ty) = success_type(output) {
        json.push_str(&format!(
            ",\"result\":{}",
            json_string(&tidy(&quote!(#ty).to_string()))
        ));
    }
    let doc = doc_text(attrs);
    if !doc.is_empty() {
        json.push_str(&format!(",\"doc\":{}", json_string(&doc)));
    }
    json.push_str("}\n");
    json.into_bytes()
}

/// The doc comment, its lines joined by `\n`, with the one space after `///` removed.
fn doc_text(attrs: &[Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(l) => match &l.lit {
                    Lit::Str(s) => Some(s.value()),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        })
        .collect();
    lines
        .iter()
        .map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end())
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned()
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Token text as a person writes it: `BTreeMap<String, u32>`, not `BTreeMap < String , u32 >`.
fn tidy(tokens: &str) -> String {
    let mut s = tokens.to_owned();
    for (from, to) in [
        (" < ", "<"),
        ("< ", "<"),
        (" <", "<"),
        (" >", ">"),
        (" ,", ","),
        (" :: ", "::"),
        (":: ", "::"),
        ("& ", "&"),
        ("( ", "("),
        (" )", ")"),
        ("[ ", "["),
        (" ]", "]"),
        (" ;", ";"),
    ] {
        s = s.replace(from, to);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tidy_reads_like_source() {
        let ty: Type = syn::parse_quote!(std::collections::BTreeMap<String, Vec<(u8, [u8; 4])>>);
        assert_eq!(
            tidy(&quote!(#ty).to_string()),
            "std::collections::BTreeMap<String, Vec<(u8, [u8; 4])>>"
        );
        let ty: Type = syn::parse_quote!(&mut Option<serde_bytes::ByteBuf>);
        assert_eq!(
            tidy(&quote!(#ty).to_string()),
            "&mut Option<serde_bytes::ByteBuf>"
        );
    }

    #[test]
    fn result_return_is_recognised_by_last_segment() {
        let out: ReturnType = syn::parse_quote!(-> std::io::Result<u8>);
        assert!(returns_result(&out));
        let out: ReturnType = syn::parse_quote!(-> Result<u8, String>);
        assert!(returns_result(&out));
        let out: ReturnType = syn::parse_quote!(-> Option<u8>);
        assert!(!returns_result(&out));
        assert!(!returns_result(&ReturnType::Default));
    }

    #[test]
    fn method_doc_has_signature_and_first_doc_line() {
        let m: ImplItemFn = syn::parse_quote! {
            /// Adds `by`.
            ///
            /// More.
            pub fn incr(&mut self, by: i64) -> Result<i64, String> { todo!() }
        };
        let p = params(&m.sig, "Counter.incr").unwrap();
        assert_eq!(
            method_doc("incr", &p.described, &m.sig.output, &m.attrs),
            "incr(by: i64) -> i64: Adds `by`."
        );
        assert!(is_callable(&m));
        let m: ImplItemFn = syn::parse_quote!(
            fn private(&self) {}
        );
        assert!(!is_callable(&m));
        let m: ImplItemFn = syn::parse_quote!(
            pub fn new() -> Self {
                todo!()
            }
        );
        assert!(!is_callable(&m));
        let m: ImplItemFn = syn::parse_quote!(
            pub fn consume(self) {}
        );
        assert!(!is_callable(&m));
    }

    #[test]
    fn the_signature_record_names_params_the_success_type_and_the_doc() {
        let f: ItemFn = syn::parse_quote! {
            /// Lines that match.
            ///
            /// With "quotes" and a \ backslash.
            fn grep_lines(pattern: String, text: String) -> Result<Vec<(u32, String)>, regex::Error> {
                todo!()
            }
        };
        let p = params(&f.sig, "grep_lines").unwrap();
        let record = signature_record("grep_lines", &p, &f.sig.output, &f.attrs);
        assert_eq!(
            String::from_utf8(record).unwrap(),
            concat!(
                r#"{"name":"grep_lines","params":[{"name":"pattern","type":"String"},"#,
                r#"{"name":"text","type":"String"}],"result":"Vec<(u32, String)>","#,
                r#""doc":"Lines that match.\n\nWith \"quotes\" and a \\ backslash."}"#,
                "\n"
            )
        );
        let f: ItemFn = syn::parse_quote!(
            fn reset() -> std::io::Result<()> {
                todo!()
            }
        );
        let p = params(&f.sig, "reset").unwrap();
        let record = signature_record("reset", &p, &f.sig.output, &f.attrs);
        assert_eq!(record, b"{\"name\":\"reset\",\"params\":[]}\n");
        let f: ItemFn = syn::parse_quote!(
            fn n() -> u64 {
                0
            }
        );
        let record = signature_record("n", &params(&f.sig, "n").unwrap(), &f.sig.output, &[]);
        assert_eq!(
            record,
            b"{\"name\":\"n\",\"params\":[],\"result\":\"u64\"}\n"
        );
    }

    #[test]
    fn borrowed_parameters_are_refused_with_a_hint() {
        let f: ItemFn = syn::parse_quote!(
            fn f(s: &str) {}
        );
        let err = expand_export(&f, None).unwrap_err();
        assert!(err.to_string().contains("`String`, not `&str`"), "{err}");
        let f: ItemFn = syn::parse_quote!(
            async fn f() {}
        );
        assert!(expand_export(&f, None).is_err());
        let f: ItemFn = syn::parse_quote!(
            fn f<T>(t: T) {}
        );
        assert!(expand_export(&f, None).is_err());
    }
}
