"""Reading inputs: matching patterns to files (match), opening them as streams (streams), archive members
(archives)."""
