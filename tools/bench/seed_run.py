"""Runs the seed's Lambda handler, read unmodified from the given path, in this fresh process.

Prints one JSON line: the import time (boto3 and the module's clients), the handler's time,
and the process's peak resident memory. Used by `cargo xtask bench`.
"""

import importlib.util
import json
import resource
import sys
import time


def main() -> None:
    started = time.perf_counter()
    path, event = sys.argv[1], json.loads(sys.argv[2])
    spec = importlib.util.spec_from_file_location("seed_lambda_function", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    imported = time.perf_counter()
    result = module.lambda_handler(event, None)
    handled = time.perf_counter()
    print(
        json.dumps(
            {
                "import_ms": (imported - started) * 1000,
                "handler_ms": (handled - imported) * 1000,
                "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "result": result,
            },
            default=str,
        )
    )


if __name__ == "__main__":
    main()
