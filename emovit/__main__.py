from emovit.cli import main

raise SystemExit(main())
