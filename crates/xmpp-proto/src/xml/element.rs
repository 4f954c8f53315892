//! A minimal namespace-aware element tree. Stanzas are routed, not interpreted, by the s2s layer, so this is
//! all the structure it needs; the translation core reads the few children it maps.

/// An attribute: namespace (empty for unqualified attributes, which is nearly all of them), local name, value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Namespace URI, or empty.
    pub ns: String,
    /// Local name.
    pub name: String,
    /// Unescaped value.
    pub value: String,
}

/// A child of an element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Character data (already unescaped).
    Text(String),
}

/// An XML element with its namespace, attributes and children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    ns: String,
    name: String,
    attrs: Vec<Attribute>,
    children: Vec<Node>,
}

impl Element {
    /// A new empty element.
    pub fn new(ns: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            ns: ns.into(),
            name: name.into(),
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Builder: sets an unqualified attribute.
    #[must_use]
    pub fn with_attr(mut self, name: &str, value: impl Into<String>) -> Self {
        self.set_attr(name, value);
        self
    }

    /// Builder: appends a child element.
    #[must_use]
    pub fn with_child(mut self, child: Self) -> Self {
        self.children.push(Node::Element(child));
        self
    }

    /// Builder: appends text.
    #[must_use]
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.children.push(Node::Text(text.into()));
        self
    }

    /// The namespace URI.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// The local name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this element has the given namespace and local name.
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    /// The value of an unqualified attribute.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attr_ns("", name)
    }

    /// The value of a namespaced attribute.
    pub fn attr_ns(&self, ns: &str, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns == ns && a.name == name)
            .map(|a| a.value.as_str())
    }

    /// All attributes.
    pub fn attrs(&self) -> &[Attribute] {
        &self.attrs
    }

    /// Sets (or replaces) an unqualified attribute.
    pub fn set_attr(&mut self, name: &str, value: impl Into<String>) {
        self.set_attr_ns("", name, value);
    }

    /// Sets (or replaces) a namespaced attribute.
    pub fn set_attr_ns(&mut self, ns: &str, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.attrs.iter_mut().find(|a| a.ns == ns && a.name == name) {
            Some(existing) => existing.value = value,
            None => self.attrs.push(Attribute {
                ns: ns.to_owned(),
                name: name.to_owned(),
                value,
            }),
        }
    }

    /// Removes an unqualified attribute, returning its value.
    pub fn remove_attr(&mut self, name: &str) -> Option<String> {
        let index = self
            .attrs
            .iter()
            .position(|a| a.ns.is_empty() && a.name == name)?;
        Some(self.attrs.remove(index).value)
    }

    /// All child nodes.
    pub fn nodes(&self) -> &[Node] {
        &self.children
    }

    /// Child elements.
    pub fn children(&self) -> impl Iterator<Item = &Self> {
        self.children.iter().filter_map(|node| match node {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child element with the given namespace and name.
    pub fn child(&self, ns: &str, name: &str) -> Option<&Self> {
        self.children().find(|c| c.is(ns, name))
    }

    /// Appends a child element.
    pub fn push_child(&mut self, child: Self) {
        self.children.push(Node::Element(child));
    }

    /// Appends a node.
    pub(crate) fn push_node(&mut self, node: Node) {
        match (node, self.children.last_mut()) {
            // The parser may split text into several events; keep it as one node.
            (Node::Text(more), Some(Node::Text(text))) => text.push_str(&more),
            (node, _) => self.children.push(node),
        }
    }

    /// The concatenated character data directly inside this element.
    pub fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|node| match node {
                Node::Text(t) => Some(t.as_str()),
                Node::Element(_) => None,
            })
            .collect()
    }
}
