"""Running the harness inside its hermetic image (issue 14): what a container may see
(spec).  The image's recipe, the engine boundary and the CLI's `image` verbs come next."""
