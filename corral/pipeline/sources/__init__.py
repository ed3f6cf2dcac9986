"""The sources of a build: the protocol every source implements (base), the list of them (registry),
and one module or package per source, its rules first and its phases after."""
