//! Wavelake web app (Dioxus): the dataset explorer and query editor. Built in a later issue.
