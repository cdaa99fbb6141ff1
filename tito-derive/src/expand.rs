//! Code generation: the `TitoModelTrait` impl and the typed query constructors, one function
//! per generated item. Generated code names everything through `::tito::__private`, so it
//! needs no imports in the user's crate; checks that can fail carry the span of the attribute
//! or field they are about.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};

use crate::model::{Index, IndexField, Model};

/// Everything the derive emits for `model`.
pub fn model(model: &Model) -> TokenStream {
    let ident = &model.ident;
    let (impl_generics, ty_generics, where_clause) = model.generics.split_for_impl();
    let trait_items = [
        get_id(model),
        get_table_name(model),
        get_indexes(model),
        get_unique_indexes(model),
        get_embedded_relationships(model),
        get_has_many(model),
        get_events(model),
        partition_key(model),
        version(model),
        model_version(model),
        stored_fields(model),
        conditional_indexes(model),
        related_shapes(model),
        typed_index_entries(model),
    ];
    let queries = model.indexes.iter().map(|index| typed_query(model, index));
    let unique_gets = (model.indexes.iter())
        .filter(|index| index.unique)
        .map(|index| get_by_unique(model, index));
    let get = get_by_id(model);
    let relations = relation_constants(model);
    quote! {
        #[automatically_derived]
        impl #impl_generics ::tito::__private::TitoModelTrait for #ident #ty_generics #where_clause {
            #(#trait_items)*
        }

        #[automatically_derived]
        #[allow(dead_code)]
        impl #impl_generics #ident #ty_generics #where_clause {
            #get
            #(#queries)*
            #(#unique_gets)*
            #relations
        }
    }
}

fn get_id(model: &Model) -> TokenStream {
    let id = &model.id;
    let to_string = quote_spanned!(model.id_span=> ::std::string::ToString::to_string(&self.#id));
    quote! {
        fn get_id(&self) -> ::std::string::String {
            #to_string
        }
    }
}

fn get_table_name(model: &Model) -> TokenStream {
    let table = &model.table;
    quote! {
        fn get_table_name(&self) -> ::std::string::String {
            ::std::string::String::from(#table)
        }
    }
}

/// `(condition)(self)` for a conditional index, `true` otherwise.
fn condition(index: &Index) -> TokenStream {
    match &index.condition {
        Some(path) => quote_spanned!(syn::spanned::Spanned::span(path)=> (#path)(self)),
        None => quote!(true),
    }
}

fn get_indexes(model: &Model) -> TokenStream {
    let configs = model.indexes.iter().map(|index| {
        let name = &index.name;
        let condition = condition(index);
        let fields = index.fields.iter().map(|field| {
            let path = &field.json_path;
            let ty = &field.ty;
            let block_type = quote_spanned!(field.span=>
                <#ty as ::tito::__private::IndexComponent>::BLOCK_TYPE
            );
            quote! {
                ::tito::__private::TitoIndexField {
                    name: ::std::string::String::from(#path),
                    r#type: #block_type,
                }
            }
        });
        quote! {
            ::tito::__private::TitoIndexConfig {
                condition: #condition,
                name: ::std::string::String::from(#name),
                fields: ::std::vec![#(#fields),*],
                custom_generator: ::std::option::Option::None,
            }
        }
    });
    quote! {
        fn get_indexes(&self) -> ::std::vec::Vec<::tito::__private::TitoIndexConfig> {
            ::std::vec![#(#configs),*]
        }
    }
}

fn get_unique_indexes(model: &Model) -> TokenStream {
    let unique = model
        .indexes
        .iter()
        .filter(|index| index.unique)
        .map(|index| &index.name);
    quote! {
        fn get_unique_indexes(&self) -> ::std::vec::Vec<::std::string::String> {
            ::std::vec![#(::std::string::String::from(#unique)),*]
        }
    }
}

fn get_embedded_relationships(model: &Model) -> TokenStream {
    let checks = model.relations.iter().filter_map(|relation| {
        let ty = relation.source_ty.as_ref()?;
        Some(quote_spanned!(relation.span=> ::tito::__private::relation_source::<#ty>();))
    });
    let configs = model.relations.iter().map(|relation| {
        let source = &relation.json_source;
        let destination = &relation.json_destination;
        let target = &relation.model;
        let table = quote_spanned!(relation.span=> ::tito::__private::table_of::<#target>());
        quote! {
            ::tito::__private::TitoEmbeddedRelationshipConfig {
                source_field_name: ::std::string::String::from(#source),
                destination_field_name: ::std::string::String::from(#destination),
                model: #table,
            }
        }
    });
    quote! {
        fn get_embedded_relationships(
            &self,
        ) -> ::std::vec::Vec<::tito::__private::TitoEmbeddedRelationshipConfig> {
            #(#checks)*
            ::std::vec![#(#configs),*]
        }
    }
}

fn get_has_many(model: &Model) -> TokenStream {
    if model.has_many.is_empty() {
        return TokenStream::new();
    }
    let configs = model.has_many.iter().map(|has_many| {
        let (index, destination) = (&has_many.index, &has_many.json_destination);
        let target = &has_many.model;
        quote_spanned!(has_many.span=>
            ::tito::__private::TitoHasManyConfig::through::<#target>(#index, #destination)
        )
    });
    quote! {
        fn get_has_many(&self) -> ::std::vec::Vec<::tito::__private::TitoHasManyConfig> {
            ::std::vec![#(#configs),*]
        }
    }
}

fn get_events(model: &Model) -> TokenStream {
    let names = &model.events;
    quote! {
        fn get_events(&self) -> ::std::vec::Vec<::tito::__private::TitoEventConfig> {
            ::std::vec![#(::tito::__private::TitoEventConfig {
                name: ::std::string::String::from(#names),
            }),*]
        }
    }
}

fn partition_key(model: &Model) -> TokenStream {
    let Some(key) = &model.partition_key else {
        return TokenStream::new();
    };
    let to_string = quote_spanned!(key.span()=> ::std::string::ToString::to_string(&self.#key));
    quote! {
        fn partition_key(&self) -> ::std::string::String {
            #to_string
        }
    }
}

/// The version field's name and accessors; a field that is not a `u64` fails at its type.
fn version(model: &Model) -> TokenStream {
    let Some(version) = &model.version else {
        return TokenStream::new();
    };
    let (field, name) = (&version.field, &version.json_name);
    let ty = &version.ty;
    let field_of = quote_spanned!(syn::spanned::Spanned::span(ty)=>
        <#ty as ::tito::__private::VersionField>
    );
    quote! {
        fn version_field(&self) -> ::std::option::Option<::std::string::String> {
            ::std::option::Option::Some(::std::string::String::from(#name))
        }

        fn version(&self) -> u64 {
            #field_of::get(&self.#field)
        }

        fn set_version(&mut self, version: u64) {
            #field_of::set(&mut self.#field, version)
        }
    }
}

/// `MODEL_VERSION` and, with `from`, the conversion of older records.
fn model_version(model: &Model) -> TokenStream {
    let Some(shape) = &model.shape else {
        return TokenStream::new();
    };
    let version = shape.version;
    let from_stored = shape.from.as_ref().map(|older| {
        let read = quote_spanned!(syn::spanned::Spanned::span(older)=>
            ::tito::__private::read_versioned::<Self, #older>
        );
        quote! {
            fn from_stored(
                version: u32,
                json: &[u8],
            ) -> ::std::result::Result<Self, ::tito::__private::serde_json::Error> {
                #read(version, json)
            }
        }
    });
    quote! {
        const MODEL_VERSION: u32 = #version;
        #from_stored
    }
}

/// The names of the model's fields in stored records, so a write keeps the fields it does not
/// know (those of a newer model).
fn stored_fields(model: &Model) -> TokenStream {
    let Some(names) = &model.stored_fields else {
        return TokenStream::new();
    };
    quote! {
        fn stored_fields() -> ::std::option::Option<&'static [&'static str]> {
            ::std::option::Option::Some(&[#(#names),*])
        }
    }
}

/// The names of the indexes with a condition.
fn conditional_indexes(model: &Model) -> TokenStream {
    let names = (model.indexes.iter())
        .filter(|index| index.condition.is_some())
        .map(|index| &index.name);
    quote! {
        fn conditional_indexes() -> ::std::option::Option<&'static [&'static str]> {
            ::std::option::Option::Some(&[#(#names),*])
        }
    }
}

/// How to read the records of the related models, whatever version wrote them.
fn related_shapes(model: &Model) -> TokenStream {
    let targets = (model.relations.iter().map(|r| (&r.model, r.span)))
        .chain(model.has_many.iter().map(|h| (&h.model, h.span)));
    let shapes: Vec<_> = targets
        .map(
            |(target, span)| quote_spanned!(span=> ::tito::__private::RecordShape::of::<#target>()),
        )
        .collect();
    if shapes.is_empty() {
        return TokenStream::new();
    }
    quote! {
        fn related_shapes() -> ::std::vec::Vec<::tito::__private::RecordShape> {
            ::std::vec![#(#shapes),*]
        }
    }
}

/// Index entries straight from the typed fields, skipping indexes whose condition is false.
fn typed_index_entries(model: &Model) -> TokenStream {
    let nested = model
        .indexes
        .iter()
        .flat_map(|index| &index.fields)
        .any(|field| !field.path.is_empty());
    let import = nested.then(|| {
        quote!(
            use ::tito::__private::Fanout as _;
        )
    });
    let entries = if model.indexes.is_empty() {
        quote!(_)
    } else {
        quote!(entries)
    };
    let indexes = model.indexes.iter().map(|index| {
        let name = &index.name;
        let vars: Vec<_> = (0..index.fields.len())
            .map(|i| format_ident!("field_{}", i))
            .collect();
        let fills = index
            .fields
            .iter()
            .zip(&vars)
            .map(|(field, var)| components(field, var));
        let body = quote! {
            #(let mut #vars = ::std::vec::Vec::new(); #fills)*
            ::tito::__private::push_index(entries, #name, &[#(#vars),*])?;
        };
        match index.condition {
            Some(_) => {
                let condition = condition(index);
                quote!(if #condition { #body })
            }
            None => quote!({ #body }),
        }
    });
    quote! {
        fn typed_index_entries(
            &self,
        ) -> ::std::option::Option<
            ::std::result::Result<
                ::std::vec::Vec<::tito::__private::IndexedValues>,
                ::tito::__private::TitoError,
            >,
        > {
            #import
            ::tito::__private::typed_entries(|#entries| {
                #(#indexes)*
                ::std::result::Result::Ok(())
            })
        }
    }
}

/// Appends the components of one index field to `var`, fanning out along a nested path.
fn components(field: &IndexField, var: &syn::Ident) -> TokenStream {
    let ty = &field.ty;
    let name = &field.field;
    let Some((leaf, hops)) = field.path.split_last() else {
        return quote_spanned!(field.span=>
            ::tito::__private::push_components::<#ty>(&self.#name, &mut #var)?;
        );
    };
    let mut call = quote_spanned!(field.span=>
        ::tito::__private::push_components::<#ty>(&value.#leaf, &mut #var)
    );
    for hop in hops.iter().rev() {
        call = quote! {
            (&::tito::__private::Hop(&value.#hop)).each(|value| #call)
        };
    }
    quote! {
        (&::tito::__private::Hop(&self.#name)).each(|value| #call)?;
    }
}

/// The typed query constructor of one index: `User::by_email(&users)`.
fn typed_query(model: &Model, index: &Index) -> TokenStream {
    let vis = &model.vis;
    let method = &index.method;
    let name = &index.name;
    let fields = index
        .fields
        .iter()
        .rev()
        .fold(quote!(::tito::__private::End), |rest, field| {
            let ty = &field.ty;
            quote!(::tito::__private::Field<#ty, #rest>)
        });
    let doc = format!("A typed query on the `{name}` index.");
    quote! {
        #[doc = #doc]
        #vis fn #method<B: ::tito::__private::Backend>(
            model: &::tito::__private::TitoModel<Self, B>,
        ) -> ::tito::__private::TypedQuery<Self, B, #fields> {
            ::tito::__private::TypedQuery::new(model.query_by_index(#name))
        }
    }
}

/// The typed read by id: `User::get(&users, id)`.
fn get_by_id(model: &Model) -> TokenStream {
    let vis = &model.vis;
    quote! {
        /// Reads the record with id `id` from a consistent snapshot, or `None`.
        #vis async fn get<B: ::tito::__private::Backend>(
            model: &::tito::__private::TitoModel<Self, B>,
            id: &str,
        ) -> ::std::result::Result<::std::option::Option<Self>, ::tito::__private::TitoError> {
            model.get(id).await
        }
    }
}

/// The typed read through one unique index: `User::get_by_email(&users, "a@b.c")`.
fn get_by_unique(model: &Model, index: &Index) -> TokenStream {
    let vis = &model.vis;
    let query = &index.method;
    let method = format_ident!("get_{}", index.method);
    let params: Vec<syn::Ident> = (0..index.fields.len())
        .map(|i| format_ident!("value_{}", i))
        .collect();
    let types = index.fields.iter().map(|field| &field.ty);
    let doc = format!(
        "Reads the record whose `{}` index entry holds the given values, or `None`.",
        index.name
    );
    quote! {
        #[doc = #doc]
        #vis async fn #method<B: ::tito::__private::Backend>(
            model: &::tito::__private::TitoModel<Self, B>,
            #(#params: impl ::tito::__private::QueryArg<#types>),*
        ) -> ::std::result::Result<::std::option::Option<Self>, ::tito::__private::TitoError> {
            Self::#query(model)#(.value(#params))*.first().await
        }
    }
}

/// One associated constant per relationship, for typed queries: `Post::TAGS`.
fn relation_constants(model: &Model) -> TokenStream {
    let vis = &model.vis;
    let embedded = (model.relations.iter()).map(|r| (&r.constant, &r.json_destination));
    let has_many = (model.has_many.iter()).map(|h| (&h.constant, &h.json_destination));
    let constants = embedded.chain(has_many).map(|(constant, destination)| {
        let doc = format!("The `{destination}` relationship, for typed queries.");
        quote! {
            #[doc = #doc]
            #vis const #constant: ::tito::__private::Relation<Self> =
                ::tito::__private::Relation::new(#destination);
        }
    });
    quote!(#(#constants)*)
}
