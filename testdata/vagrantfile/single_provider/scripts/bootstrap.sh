#!/bin/bash
echo bootstrap "$@"
