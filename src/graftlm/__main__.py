from graftlm.cli import main

raise SystemExit(main())
