#!/bin/sh
echo notify
