//! The routes the contract declares: every `google.api.http` rule (and its
//! additional bindings) of every `kith.v1` method, read from the descriptor
//! set, each with its path template parsed.

use std::sync::Arc;

use http::Method;
use prost_reflect::{DescriptorPool, DynamicMessage, FieldDescriptor, MethodDescriptor, Value};

/// The package whose methods are served.
const PACKAGE: &str = "kith.v1";

/// A path variable's field path and the value the path gave it.
pub type Bound = Vec<(String, String)>;

/// One REST route of one method.
#[derive(Debug, Clone)]
pub struct Binding {
    pub method: MethodDescriptor,
    pub verb: Method,
    pub template: PathTemplate,
    pub body: BodyRule,
    /// The template, as the label of a request's metrics: never the raw
    /// path.
    pub route: Arc<str>,
}

/// Where the request message comes from besides the path.
#[derive(Debug, Clone)]
pub enum BodyRule {
    /// No body: every field not in the path is a query parameter.
    None,
    /// `body: "*"`: the whole message is the body.
    Whole,
    /// `body: "field"`: that field is the body; the rest are query
    /// parameters.
    Field(FieldDescriptor),
}

/// A path template: literal segments and `{field}` variables, with an
/// optional `:verb` after the last segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    segments: Vec<Segment>,
    verb: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// A variable binding one path segment to a (dotted) field path.
    Variable(String),
}

impl PathTemplate {
    /// Parses `/kith/v1/customers/{id}` or `/kith/v1/people:import`.
    /// Variables match one segment: the contract uses no `{x=**}`.
    pub fn parse(template: &str) -> Result<Self, String> {
        let rest = template
            .strip_prefix('/')
            .ok_or_else(|| format!("template {template:?} does not start with /"))?;
        let (path, verb) = match rest.rsplit_once(':') {
            Some((path, verb)) if !verb.contains('/') && !verb.contains('}') => {
                (path, Some(verb.to_owned()))
            }
            _ => (rest, None),
        };
        let segments = path
            .split('/')
            .map(|segment| match segment.strip_prefix('{') {
                Some(variable) => {
                    let field = variable
                        .strip_suffix('}')
                        .filter(|field| !field.contains('=') && !field.is_empty())
                        .ok_or_else(|| {
                            format!("unsupported variable {segment:?} in {template:?}")
                        })?;
                    Ok(Segment::Variable(field.to_owned()))
                }
                None if segment.is_empty() || segment.contains(['{', '}', '*']) => {
                    Err(format!("unsupported segment {segment:?} in {template:?}"))
                }
                None => Ok(Segment::Literal(segment.to_owned())),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { segments, verb })
    }

    /// The variables' values if `path` matches, percent-decoded, by field
    /// path.
    pub fn matches(&self, path: &str) -> Option<Bound> {
        let rest = path.strip_prefix('/')?;
        let rest = match &self.verb {
            Some(verb) => rest.strip_suffix(verb.as_str())?.strip_suffix(':')?,
            // A path with a verb is not this template's.
            None if rest
                .rsplit('/')
                .next()
                .is_some_and(|last| last.contains(':')) =>
            {
                return None;
            }
            None => rest,
        };
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut bound = Vec::new();
        for (segment, part) in self.segments.iter().zip(parts) {
            match segment {
                Segment::Literal(literal) if literal == part => {}
                Segment::Literal(_) => return None,
                Segment::Variable(_) if part.is_empty() => return None,
                Segment::Variable(field) => {
                    let value = percent_encoding::percent_decode_str(part)
                        .decode_utf8()
                        .ok()?
                        .into_owned();
                    bound.push((field.clone(), value));
                }
            }
        }
        Some(bound)
    }

    /// The variables' field paths, in path order.
    pub fn variables(&self) -> Vec<String> {
        self.segments
            .iter()
            .filter_map(|segment| match segment {
                Segment::Variable(field) => Some(field.clone()),
                Segment::Literal(_) => None,
            })
            .collect()
    }

    /// The template as an OpenAPI path: `/kith/v1/customers/{id}`,
    /// `/kith/v1/people:import`.
    pub fn openapi_path(&self) -> String {
        let mut path = String::new();
        for segment in &self.segments {
            path.push('/');
            match segment {
                Segment::Literal(literal) => path.push_str(literal),
                Segment::Variable(field) => {
                    path.push('{');
                    path.push_str(field);
                    path.push('}');
                }
            }
        }
        if let Some(verb) = &self.verb {
            path.push(':');
            path.push_str(verb);
        }
        path
    }

    /// How specific the template is, to try literal routes before ones
    /// with variables where both could match.
    pub fn literals(&self) -> usize {
        self.segments
            .iter()
            .filter(|segment| matches!(segment, Segment::Literal(_)))
            .count()
    }
}

/// Every binding of every method of the package's services, the most
/// specific first.
pub fn bindings(pool: &DescriptorPool) -> Result<Vec<Binding>, String> {
    let http = pool
        .get_extension_by_name("google.api.http")
        .ok_or("the descriptor set lacks google/api/annotations.proto")?;
    let mut bindings = Vec::new();
    for service in pool.services().filter(|s| s.package_name() == PACKAGE) {
        for method in service.methods() {
            let options = method.options();
            if !options.has_extension(&http) {
                continue;
            }
            let Value::Message(rule) = options.get_extension(&http).into_owned() else {
                return Err(format!(
                    "{}: google.api.http is not a rule",
                    method.full_name()
                ));
            };
            bindings.push(binding(&method, &rule)?);
            if let Some(Value::List(more)) = rule
                .get_field_by_name("additional_bindings")
                .map(std::borrow::Cow::into_owned)
            {
                for extra in more {
                    if let Value::Message(extra) = extra {
                        bindings.push(binding(&method, &extra)?);
                    }
                }
            }
        }
    }
    bindings.sort_by_key(|b| std::cmp::Reverse(b.template.literals()));
    Ok(bindings)
}

fn binding(method: &MethodDescriptor, rule: &DynamicMessage) -> Result<Binding, String> {
    let string = |name: &str| match rule.get_field_by_name(name).as_deref() {
        Some(Value::String(text)) if rule.has_field_by_name(name) => Some(text.clone()),
        _ => None,
    };
    let (verb, template) = [
        ("get", Method::GET),
        ("put", Method::PUT),
        ("post", Method::POST),
        ("delete", Method::DELETE),
        ("patch", Method::PATCH),
    ]
    .into_iter()
    .find_map(|(name, verb)| string(name).map(|template| (verb, template)))
    .ok_or_else(|| format!("{}: a rule without a pattern", method.full_name()))?;
    let input = method.input();
    let body = match string("body").as_deref() {
        None | Some("") => BodyRule::None,
        Some("*") => BodyRule::Whole,
        Some(field) => BodyRule::Field(input.get_field_by_name(field).ok_or_else(|| {
            format!(
                "{}: body field {field:?} is not in {}",
                method.full_name(),
                input.full_name()
            )
        })?),
    };
    let template = PathTemplate::parse(&template)?;
    Ok(Binding {
        method: method.clone(),
        verb,
        route: Arc::from(template.openapi_path()),
        template,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::PathTemplate;

    #[test]
    fn templates_bind_variables_and_keep_verbs_apart() {
        let get = PathTemplate::parse("/kith/v1/customers/{id}").unwrap();
        assert_eq!(
            get.matches("/kith/v1/customers/abc%20d"),
            Some(vec![("id".to_owned(), "abc d".to_owned())])
        );
        assert_eq!(get.matches("/kith/v1/customers"), None);
        assert_eq!(get.matches("/kith/v1/customers/a/b"), None);
        assert_eq!(get.matches("/kith/v1/customers/"), None);
        assert_eq!(get.matches("/kith/v1/customers:upsert"), None);

        let import = PathTemplate::parse("/kith/v1/people:import").unwrap();
        assert_eq!(import.matches("/kith/v1/people:import"), Some(Vec::new()));
        assert_eq!(import.matches("/kith/v1/people"), None);
        let list = PathTemplate::parse("/kith/v1/people").unwrap();
        assert_eq!(list.matches("/kith/v1/people:import"), None);

        let nested =
            PathTemplate::parse("/kith/v1/customers/{customer_id}/entities:batchUpsert").unwrap();
        assert_eq!(
            nested.matches("/kith/v1/customers/acme/entities:batchUpsert"),
            Some(vec![("customer_id".to_owned(), "acme".to_owned())])
        );
        assert!(PathTemplate::parse("/v1/{name=shelves/*}").is_err());
        assert!(PathTemplate::parse("v1/x").is_err());
    }
}
