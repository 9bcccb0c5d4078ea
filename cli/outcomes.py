"""The exit statuses of `tingxie submit` (single jobs and batches), as the README documents them."""

OK, FAILED, USAGE, UNREACHABLE, INTERRUPTED = 0, 1, 2, 3, 130
