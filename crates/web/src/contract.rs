//! The answers every operation can give whatever it does, added to the OpenAPI document so
//! that it lists every status the server sends: 401 where a credential is needed, 400 for a
//! path parameter that does not parse or a body that is not JSON, 413 and 415 for bodies, 422
//! for a query or body value that is wrong; 403 where a role or scope can be missing.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

/// Adds the common answers each operation can give to its documented responses.
pub fn document_common_answers(doc: &mut OpenApi) {
    for item in doc.paths.paths.values_mut() {
        for op in [
            item.get.as_mut(),
            item.put.as_mut(),
            item.post.as_mut(),
            item.delete.as_mut(),
            item.patch.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            common_answers(op);
        }
    }
}

fn common_answers(op: &mut Operation) {
    let params = op.parameters.as_deref().unwrap_or_default();
    let has = |place: ParameterIn| {
        params.iter().any(|p| match p {
            RefOr::T(p) => p.parameter_in == place,
            RefOr::Ref(_) => false,
        })
    };
    let (in_path, in_query) = (has(ParameterIn::Path), has(ParameterIn::Query));
    let body = op.request_body.is_some();
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let mut add = |status: &str, description: &str| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| {
                RefOr::T(
                    ResponseBuilder::new()
                        .description(description)
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name("ErrorBody")))
                                .build(),
                        )
                        .build(),
                )
            });
    };
    if secured {
        add(
            "401",
            "No credential, or one that does not work (any longer)",
        );
        add("403", "The credential does not allow this");
    }
    if in_path {
        add("404", "Nothing has this id");
    }
    if in_path || body {
        add(
            "400",
            "A path parameter that does not parse, or a body that is not JSON",
        );
    }
    if body {
        add("413", "The body is larger than the server takes");
        add(
            "415",
            "The body's Content-Type is not one this operation takes",
        );
    }
    if body || in_query {
        add("422", "A value is wrong; `field` names it");
    }
}
